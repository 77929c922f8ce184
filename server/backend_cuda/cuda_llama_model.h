// The CUDA forward pass of a LLaMA-family decoder over a device paged KV cache
// with a long-context policy (design.md §3; issue 6).
//
// It computes what hr::LlamaModel (server/model/llama_model.h) computes with
// hr::PagedSequence attention (server/longctx/paged_sequence.h), with the
// same semantics per policy (full / window / longheads; summary kinds; GQA per
// query head or per KV head; prefill selection per token or per chunk):
//   embedding → per layer [RMSNorm → QKV GEMM → KV append with local RoPE →
//   summaries of completed chunks → chunk scores + selection → slot attention
//   → output GEMM (+residual) → RMSNorm → gate|up GEMM → SwiGLU → down GEMM
//   (+residual)] → final RMSNorm → LM head.
// Steps of up to kDecodeMaxQueries tokens use the split-K decode kernel, one
// launch for each run of consecutive decode entries of the batch (their block
// lists in rows of one buffer); longer ones the prefill kernel over the span.
//
// Numerics (WeightDType):
//   kF32   FP32 everywhere (no TF32): the exactness path, checked against the
//          CPU backend (same greedy ids, logits within a tight tolerance).
//   kBF16  the weight matrices (QKV, output, gate/up, down, LM head) and the
//          activations entering them are BF16, accumulated in FP32; the
//          embedding table, norms, residual stream, attention and logits stay
//          FP32. The KV cache dtype is chosen separately (CudaModelOptions).
//
// Device memory: the weights are copied to the current CUDA device at
// Create() (the host LlamaWeights may be freed afterwards); the KV cache takes
// CudaModelOptions::kv_budget_bytes up front. Scratch grows with the largest
// batch seen (a Forward call that grows it synchronises the device), up to
// WorkingBytesBound(). With kv_budget_bytes 0, Create() reserves the scratch
// at that bound first, then gives the KV cache what the device has left
// (kv_budget.h), so no later Forward call within the options grows it.
//
// Thread-safety: not thread-safe. A model (its stream, scratch and KV cache)
// belongs to one worker thread, which also creates, runs and destroys the
// model's sequences. Ownership: sequences borrow the model's KV cache and
// must be destroyed before the model.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_CUDA_LLAMA_MODEL_H_
#define HEADROOM_SERVER_BACKEND_CUDA_CUDA_LLAMA_MODEL_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend_cuda/cuda_sequence.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/model/weights.h"

namespace hr::cuda {
class RopeTables;
}  // namespace hr::cuda

namespace hr {

class CudaKvCache;
class DeviceWeights;
struct ForwardScratch;

enum class WeightDType { kF32, kBF16 };

struct CudaModelOptions {
  WeightDType weights = WeightDType::kF32;  // see the header comment
  KvDType kv_dtype = KvDType::kF32;         // keys and values; summaries are always F32
  int32_t chunk_size = 256;                 // tokens per KV block; every sequence of the model uses it
  // Device bytes for KV blocks and their summaries; 0: sized from the
  // device's memory (kv_budget.h) with the three fields below.
  int64_t kv_budget_bytes = int64_t{1} << 30;
  double memory_fraction = 0.9;             // of the device's memory, for weights + KV + working memory
  int64_t max_step_tokens = 2048;           // tokens of one Forward call at most (working memory)
  int64_t max_context_tokens = 135168;      // tokens of one sequence at most (its chunk lists)
  int64_t max_sequences = 64;               // sequences of one Forward call at most (decode lists)
};

// One sequence's new tokens in a Forward batch (cf. hr::BatchEntry).
struct CudaBatchEntry {
  CudaSequence* sequence = nullptr;  // created by this model (not owned)
  std::span<const int32_t> tokens;   // new tokens, at positions sequence->length()...
  bool all_logits = false;           // logits for every token, else only the last
};

class CudaLlamaModel {
 public:
  // Steps (new tokens of one sequence in a batch) of at most this many tokens
  // run through the decode kernel, longer ones the prefill kernel.
  static constexpr int64_t kDecodeMaxQueries = 8;
  // int32 entries per token in ForwardScratch::ints before the logit rows:
  // its sequence's block table (a device pointer: 2), token, position, block.
  static constexpr int64_t kRowInts = 5;

  // UNAVAILABLE without a CUDA device; UNIMPLEMENTED for a head size the
  // kernels are not compiled for (cuda::SupportedHeadDim); INVALID_ARGUMENT
  // for a bad config or options; RESOURCE_EXHAUSTED when the device memory
  // for the weights or the KV budget cannot be had (or, sized from the
  // device, leaves no KV block).
  static absl::StatusOr<std::unique_ptr<CudaLlamaModel>> Create(const LlamaWeights& weights,
                                                                const CudaModelOptions& options);
  ~CudaLlamaModel();
  CudaLlamaModel(const CudaLlamaModel&) = delete;
  CudaLlamaModel& operator=(const CudaLlamaModel&) = delete;

  // Device bytes a model of `config` may take beyond its weights, KV cache
  // and decode workspace while it runs Forward calls of at most
  // options.max_step_tokens tokens (all with logits) from at most
  // options.max_sequences sequences of at most options.max_context_tokens:
  // the scratch buffers at their largest (each bounded as Forward and the
  // attention steps size it) and kWorkingMarginBytes. Queries the current
  // device (prefill split limits).
  static int64_t WorkingBytesBound(const ModelConfig& config, const CudaModelOptions& options);
  // cuBLAS's workspace, RoPE tables, sequences' block tables, allocator rounding.
  static constexpr int64_t kWorkingMarginBytes = int64_t{256} << 20;

  const ModelConfig& config() const { return config_; }
  const CudaModelOptions& options() const { return options_; }
  // Device bytes the scratch buffers hold now.
  int64_t scratch_bytes() const;
  const CudaKvCache& kv_cache() const { return *cache_; }
  // The cache as a block store (reference counts for the prefix cache).
  CudaKvCache& mutable_kv_cache() { return *cache_; }

  // A new, empty sequence that can hold `capacity_tokens` tokens (its device
  // block table is sized for them; blocks are taken as tokens arrive).
  // INVALID_ARGUMENT when `params` is invalid or params.chunk_size differs
  // from options().chunk_size, or capacity_tokens <= 0.
  absl::StatusOr<std::unique_ptr<CudaSequence>> NewSequence(const LongContextParams& params,
                                                            int64_t capacity_tokens);

  // Runs the batch (any mix of prefill runs and decode steps; each sequence
  // at most once). `logits` receives, entry by entry, vocab_size floats per
  // requested position (all tokens of entries with all_logits, else the last
  // one). INVALID_ARGUMENT for token ids outside the vocabulary, an empty
  // entry, a sequence of another model or one listed twice;
  // RESOURCE_EXHAUSTED when a sequence would pass its capacity or the cache
  // has no free block; INTERNAL for a CUDA failure. On error no sequence has
  // committed the batch's tokens (blocks taken stay with their sequences for
  // a retry). Synchronous: returns when the logits are on the host.
  absl::Status Forward(std::span<const CudaBatchEntry> batch, std::vector<float>* logits);

 private:
  CudaLlamaModel(const ModelConfig& config, const CudaModelOptions& options);
  absl::Status EnsureRopeSteps(int64_t n_steps);
  // Grows every scratch buffer to its WorkingBytesBound share.
  absl::Status ReserveWorkingScratch();
  absl::Status RunLayer(int64_t layer, std::span<const CudaBatchEntry> batch,
                        std::span<const int64_t> offset, int32_t decode_stride);

  const ModelConfig config_;
  const CudaModelOptions options_;
  std::unique_ptr<DeviceWeights> weights_;
  std::unique_ptr<CudaKvCache> cache_;
  std::unique_ptr<ForwardScratch> scratch_;
  // Query rotations by whole chunks (step chunk_size), grown by NewSequence to
  // the longest slot list any sequence can have.
  std::unique_ptr<cuda::RopeTables> rope_;
  void* stream_ = nullptr;  // cudaStream_t, owned
};

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_CUDA_LLAMA_MODEL_H_
