// The CUDA entry points (cuda_engine.h) over server/backend_cuda.
#include "server/engine/cuda_engine.h"

#include <cuda_runtime_api.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/common.h"
#include "server/backend_cuda/cuda_kv_cache.h"
#include "server/backend_cuda/cuda_llama_model.h"
#include "server/backend_cuda/cuda_sequence.h"
#include "server/common/status.h"

namespace hr {
namespace {

absl::Status SetDevice(int device) {
  const cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return absl::UnavailableError(
        absl::StrCat("CUDA device ", device, " cannot be used: ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

// A CudaSequence as the worker sees sequences. Its tokens run through
// CudaCausalLm, which commits them; the per-layer host entry point of
// SequenceAttention has nothing to run on.
class CudaPagedSequence : public PagedKvSequence {
 public:
  explicit CudaPagedSequence(std::unique_ptr<CudaSequence> seq) : seq_(std::move(seq)) {}

  CudaSequence* cuda() const { return seq_.get(); }

  int64_t length() const override { return seq_->length(); }
  absl::Status Forward(int, int64_t, const float*, const float*, const float*, float*) override {
    return absl::InternalError("a CUDA sequence runs through the CUDA model, not layer by layer");
  }
  void Commit(int64_t n_tokens) override { seq_->Commit(n_tokens); }

  const std::vector<int32_t>& block_table() const override { return seq_->blocks(); }
  void AdoptPrefix(std::span<const int32_t> blocks) override { seq_->AdoptPrefix(blocks); }
  const PagedSequenceStats& stats() const override { return seq_->stats(); }
  // Selections are made on the device and not copied back.
  void set_observer(SelectionObserver*) override {}

 private:
  std::unique_ptr<CudaSequence> seq_;
};

// CausalLm over CudaLlamaModel: the batch's sequences must be this engine's.
class CudaCausalLm : public CausalLm {
 public:
  explicit CudaCausalLm(CudaLlamaModel* model) : model_(model) {}

  int64_t vocab_size() const override { return model_->config().vocab_size; }

  // Contiguous causal attention is the `full` policy over the device cache.
  std::unique_ptr<SequenceAttention> NewSequence(int64_t capacity_tokens) const override {
    LongContextParams full;
    full.policy = AttentionPolicy::kFull;
    full.chunk_size = model_->options().chunk_size;
    absl::StatusOr<std::unique_ptr<CudaSequence>> seq = model_->NewSequence(full, capacity_tokens);
    if (!seq.ok()) return nullptr;
    return std::make_unique<CudaPagedSequence>(std::move(*seq));
  }

  absl::Status Forward(std::span<const BatchEntry> batch, std::vector<float>* logits) override {
    entries_.clear();
    for (const BatchEntry& e : batch) {
      auto* seq = dynamic_cast<CudaPagedSequence*>(e.sequence);
      if (seq == nullptr) {
        return absl::InvalidArgumentError("a sequence not made by this CUDA engine");
      }
      entries_.push_back({seq->cuda(), e.tokens, e.all_logits});
    }
    return model_->Forward(entries_, logits);
  }

 private:
  CudaLlamaModel* const model_;
  std::vector<CudaBatchEntry> entries_;
};

class CudaWorkerEngine : public WorkerEngine {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerEngine>> Create(int device, const LlamaWeights& weights,
                                                              const CudaModelOptions& options) {
    HR_RETURN_IF_ERROR(SetDevice(device));
    HR_ASSIGN_OR_RETURN(std::unique_ptr<CudaLlamaModel> model, CudaLlamaModel::Create(weights, options));
    return std::unique_ptr<WorkerEngine>(new CudaWorkerEngine(device, std::move(model)));
  }

  // The device's memory is freed with the device current (the engine is
  // destroyed on another thread than the worker's).
  ~CudaWorkerEngine() override {
    if (SetDevice(device_).ok()) {
      lm_.reset();
      model_.reset();
    }
  }

  absl::Status BindThread() override { return SetDevice(device_); }
  CausalLm& model() override { return *lm_; }
  KvBlockStore& kv() override { return model_->mutable_kv_cache(); }
  const KvBlockStore& kv() const override { return model_->kv_cache(); }

  absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(const LongContextParams& params,
                                                               int64_t capacity_tokens) override {
    HR_ASSIGN_OR_RETURN(std::unique_ptr<CudaSequence> seq, model_->NewSequence(params, capacity_tokens));
    return std::unique_ptr<PagedKvSequence>(std::make_unique<CudaPagedSequence>(std::move(seq)));
  }

  // Named once: a lost context cannot be asked.
  std::string device() const override { return name_; }

  absl::Status CheckDevice() override {
    std::string error;
    if (cuda::CheckContext(&error) == cuda::CudaStatus::kOk) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("CUDA error ", error));
  }

  // The trap is queued on the legacy default stream; the context fails as a
  // whole, so the model's next synchronization reports it.
  absl::Status InjectFault() override {
    if (cuda::LaunchTrap(nullptr) == cuda::CudaStatus::kOk) return absl::OkStatus();
    return absl::InternalError("fault drill: the trap kernel could not be launched");
  }

 private:
  CudaWorkerEngine(int device, std::unique_ptr<CudaLlamaModel> model)
      : device_(device),
        name_(absl::StrCat("cuda:", device, " (", CudaDeviceName(device), ")")),
        model_(std::move(model)),
        lm_(std::make_unique<CudaCausalLm>(model_.get())) {}

  const int device_;
  const std::string name_;
  std::unique_ptr<CudaLlamaModel> model_;
  std::unique_ptr<CudaCausalLm> lm_;
};

// LLaMA on CUDA devices; the CPU entry points (NewInstance, NewSequence over
// a BlockPool) are the CPU family's, over the same host weights.
class ServedCudaLlama : public ServedModel {
 public:
  ServedCudaLlama(LlamaWeights weights, const CudaServeOptions& options)
      : ServedModel(weights.config), weights_(weights), options_(options), cpu_(ServeLlama(std::move(weights))) {}

  absl::Status CheckLongContext(const LongContextParams& params, int64_t longest) const override {
    if (params.chunk_size != options_.chunk_size) {
      return absl::UnimplementedError(absl::StrCat(
          "long_context.chunk_size ", params.chunk_size, ": the CUDA KV cache of this server holds chunks of ",
          options_.chunk_size, " tokens only"));
    }
    return cpu_->CheckLongContext(params, longest);
  }

  std::unique_ptr<CausalLm> NewInstance() const override { return cpu_->NewInstance(); }

  absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(const LongContextParams& params,
                                                                BlockPool* pool) const override {
    return cpu_->NewSequence(params, pool);
  }

  absl::StatusOr<std::unique_ptr<WorkerEngine>> NewWorkerEngine(int index,
                                                                const KvCacheOptions& kv) const override {
    CudaModelOptions o;
    o.weights = options_.bf16_weights ? WeightDType::kBF16 : WeightDType::kF32;
    o.kv_dtype = kv.dtype;
    o.chunk_size = options_.chunk_size;
    o.kv_budget_bytes = kv.budget_bytes;
    o.memory_fraction = kv.memory_fraction;
    o.max_step_tokens = kv.max_step_tokens;
    o.max_context_tokens = kv.max_context_tokens;
    o.max_sequences = kv.max_sequences;
    return CudaWorkerEngine::Create(index, weights_, o);
  }

  std::string backend() const override { return "cuda"; }

 private:
  const LlamaWeights weights_;  // views of the storage cpu_'s weights keep too
  const CudaServeOptions options_;
  const std::unique_ptr<ServedModel> cpu_;
};

}  // namespace

bool CudaBackendCompiled() { return true; }

int VisibleCudaDevices() { return cuda::DeviceCount(); }

std::string CudaDeviceName(int device) { return cuda::DeviceName(device); }

absl::Status CudaSupports(const ModelConfig& config) {
  if (!cuda::SupportedHeadDim(config.head_dim)) {
    return absl::UnimplementedError(
        absl::StrCat("the CUDA kernels are not compiled for head_dim ", config.head_dim,
                     " (8, 16, 32, 64, 128 are)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ServedModel>> ServeLlamaCuda(LlamaWeights weights,
                                                            const CudaServeOptions& options) {
  HR_RETURN_IF_ERROR(CudaSupports(weights.config));
  return std::unique_ptr<ServedModel>(std::make_unique<ServedCudaLlama>(std::move(weights), options));
}

}  // namespace hr
