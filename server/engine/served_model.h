// A model family as the serving engine sees it: the shape it reports and
// sizes the KV cache by, the long-context options it supports, one
// forward-pass instance per worker, and sequences over the paged KV cache.
//
// Families:
//   LLaMA (GGUF file or Hugging Face directory; RoPE): every policy, summary,
//     GQA and prefill selection mode (server/longctx/paged_sequence.h).
//   SeqPE (a directory whose config.json says "gpt2_seqpe",
//     server/model/seqpe/seqpe_loader.h), attn_scalar form only: every policy
//     and summary with per-token selection; positions come from one position
//     table shared by all workers (server/longctx/seqpe/seqpe_paged_sequence.h).
//     input_add models are refused (UNIMPLEMENTED): their positions enter at
//     the input, absolutely, so no long-context policy can re-place them.
//
// Backends: every family runs on the CPU; LLaMA models also run on CUDA
// devices (ServeLlamaCuda, server/engine/cuda_engine.h), one worker engine per
// device.
//
// Thread-safety: a ServedModel is immutable after loading except for the
// SeqPE position table, which is thread-safe; all methods may be called from
// any thread. The instances and sequences it creates follow their own rules
// (one thread at a time). Ownership: owns its weights; instances and
// sequences borrow them (the ServedModel must outlive them).
#ifndef HEADROOM_SERVER_ENGINE_SERVED_MODEL_H_
#define HEADROOM_SERVER_ENGINE_SERVED_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/engine/worker_engine.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_kv_sequence.h"
#include "server/longctx/seqpe/position_table.h"
#include "server/model/causal_lm.h"
#include "server/model/config.h"
#include "server/model/seqpe/seqpe_weights.h"
#include "server/model/tokenizer.h"
#include "server/model/weights.h"

namespace hr {

class ServedModel {
 public:
  virtual ~ServedModel() = default;

  // What the server reports (ModelInfo) and derives defaults from. SeqPE
  // models: architecture "gpt2_seqpe", n_kv_heads == n_heads, the RoPE
  // fields unused.
  const ModelConfig& config() const { return config_; }
  KvGeometry kv_geometry() const {
    return {config_.n_layers, config_.n_heads, config_.n_kv_heads, config_.head_dim};
  }

  // OK when sequences of up to `longest_tokens` tokens can run under
  // `params` (which passed params.Validate()): UNIMPLEMENTED naming an
  // option this family lacks; OUT_OF_RANGE when a position the policy reads
  // lies past the model's position budget.
  virtual absl::Status CheckLongContext(const LongContextParams& params,
                                        int64_t longest_tokens) const = 0;

  // A forward-pass instance (scratch buffers; one per worker).
  virtual std::unique_ptr<CausalLm> NewInstance() const = 0;

  // An empty sequence over `pool` (whose geometry is kv_geometry()).
  // REQUIRES: CheckLongContext(params, ...) is OK.
  virtual absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(
      const LongContextParams& params, BlockPool* pool) const = 0;

  // One worker's engine (worker_engine.h). The default runs on the CPU:
  // NewInstance(), a BlockPool of `kv` and NewSequence() over it. Families
  // on a device place worker `index` on device `index`.
  virtual absl::StatusOr<std::unique_ptr<WorkerEngine>> NewWorkerEngine(
      int index, const KvCacheOptions& kv) const;

  // Where the workers run: "cpu" or "cuda" (ModelInfo.backend).
  virtual std::string backend() const { return "cpu"; }

  // The SeqPE position table's cost so far; nullopt for other families.
  virtual std::optional<PositionTableStats> position_table_stats() const { return std::nullopt; }

 protected:
  explicit ServedModel(ModelConfig config) : config_(std::move(config)) {}

 private:
  const ModelConfig config_;
};

std::unique_ptr<ServedModel> ServeLlama(LlamaWeights weights);
// UNIMPLEMENTED for input_add models (see above).
absl::StatusOr<std::unique_ptr<ServedModel>> ServeSeqPe(SeqPeWeights weights);

struct LoadedServedModel {
  std::unique_ptr<ServedModel> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the model ships none
};

// Serves loaded LLaMA weights (ServeLlama, or ServeLlamaCuda on a device).
using ServeLlamaFn = std::function<absl::StatusOr<std::unique_ptr<ServedModel>>(LlamaWeights)>;

// A SeqPE directory (IsSeqPeModelDir) loads as SeqPE, with the SentencePiece
// `tokenizer.model` beside its config when there is one; anything else goes
// to LoadModel (server/model/loader.h) and then `serve_llama` (default: on
// the CPU). Errors as those loaders' and serve_llama's.
absl::StatusOr<LoadedServedModel> LoadServedModel(const std::string& path,
                                                  const ServeLlamaFn& serve_llama = nullptr);

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_SERVED_MODEL_H_
