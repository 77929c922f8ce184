#include "server/engine/served_model.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status.h"
#include "server/longctx/paged_sequence.h"
#include "server/longctx/seqpe/seqpe_paged_sequence.h"
#include "server/model/llama_model.h"
#include "server/model/loader.h"
#include "server/model/seqpe/seqpe_loader.h"
#include "server/model/seqpe/seqpe_model.h"
#include "server/model/seqpe/seqpe_positions.h"

namespace hr {
namespace {

class ServedLlama : public ServedModel {
 public:
  explicit ServedLlama(LlamaWeights weights)
      : ServedModel(weights.config), weights_(std::move(weights)) {}

  absl::Status CheckLongContext(const LongContextParams&, int64_t) const override {
    return absl::OkStatus();  // every option; RoPE positions have no budget
  }

  std::unique_ptr<CausalLm> NewInstance() const override {
    return std::make_unique<LlamaModel>(weights_);
  }

  absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(const LongContextParams& params,
                                                                BlockPool* pool) const override {
    HR_ASSIGN_OR_RETURN(std::unique_ptr<PagedSequence> seq,
                        PagedSequence::Create(weights_.config, params, pool));
    return std::unique_ptr<PagedKvSequence>(std::move(seq));
  }

 private:
  const LlamaWeights weights_;
};

// The server-side shape of a SeqPE model (MHA, no RoPE).
ModelConfig ShapeOf(const SeqPeConfig& c) {
  ModelConfig m;
  m.architecture = "gpt2_seqpe";
  m.dim = c.dim;
  m.n_layers = c.n_layers;
  m.n_heads = c.n_heads;
  m.n_kv_heads = c.n_heads;
  m.head_dim = c.head_dim;
  m.ffn_dim = c.ffn_dim;
  m.vocab_size = c.vocab_size;
  m.trained_context = c.trained_context;
  m.tied_embeddings = c.tied_embeddings;
  return m;
}

class ServedSeqPe : public ServedModel {
 public:
  explicit ServedSeqPe(SeqPeWeights weights)
      : ServedModel(ShapeOf(weights.config)),
        weights_(std::move(weights)),
        positions_(std::make_shared<SeqPePositions>(weights_)) {}

  absl::Status CheckLongContext(const LongContextParams& params,
                                int64_t longest_tokens) const override {
    if (params.prefill != PrefillSelection::kPerToken) {
      return absl::UnimplementedError(
          "prefill_selection: SeqPE models select per token only (use 'token')");
    }
    // full reads absolute positions; window and longheads read window
    // positions only (design: slots), so any length fits the encoder there.
    const bool absolute = params.policy == AttentionPolicy::kFull;
    const int64_t farthest = absolute ? longest_tokens : params.atten_length;
    const int64_t budget = positions_->table().budget();
    if (farthest > budget) {
      return absl::OutOfRangeError(absl::StrCat(
          absolute ? "policy full reads absolute positions: " : "atten_length: ", farthest,
          " positions exceed the SeqPE position encoder's budget of ", budget,
          " (", weights_.config.encoder.max_digits, " digits)",
          absolute ? "; use policy window or longheads for longer sequences" : ""));
    }
    return absl::OkStatus();
  }

  std::unique_ptr<CausalLm> NewInstance() const override {
    return std::make_unique<SeqPeModel>(weights_, positions_);
  }

  absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(const LongContextParams& params,
                                                                BlockPool* pool) const override {
    HR_ASSIGN_OR_RETURN(
        std::unique_ptr<SeqPePagedSequence> seq,
        SeqPePagedSequence::Create(weights_.config, params, pool, &positions_->table()));
    return std::unique_ptr<PagedKvSequence>(std::move(seq));
  }

  std::optional<PositionTableStats> position_table_stats() const override {
    return positions_->table().stats();
  }

 private:
  const SeqPeWeights weights_;
  // Shared by every worker's SeqPeModel and sequences (thread-safe).
  const std::shared_ptr<SeqPePositions> positions_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerEngine>> ServedModel::NewWorkerEngine(
    int /*index*/, const KvCacheOptions& kv) const {
  return MakeCpuWorkerEngine(*this, kv);
}

std::unique_ptr<ServedModel> ServeLlama(LlamaWeights weights) {
  return std::make_unique<ServedLlama>(std::move(weights));
}

absl::StatusOr<std::unique_ptr<ServedModel>> ServeSeqPe(SeqPeWeights weights) {
  if (weights.config.apply != PeApply::kAttnScalar) {
    return absl::UnimplementedError(
        "serving SeqPE input_add models is not supported: their positions are added at the "
        "input, absolutely, so the paged KV cache's policies cannot re-place them "
        "(attn_scalar models are served)");
  }
  return std::unique_ptr<ServedModel>(std::make_unique<ServedSeqPe>(std::move(weights)));
}

absl::StatusOr<LoadedServedModel> LoadServedModel(const std::string& path,
                                                  const ServeLlamaFn& serve_llama) {
  LoadedServedModel out;
  if (!IsSeqPeModelDir(path)) {
    HR_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(path));
    if (serve_llama) {
      HR_ASSIGN_OR_RETURN(out.model, serve_llama(std::move(loaded.weights)));
    } else {
      out.model = ServeLlama(std::move(loaded.weights));
    }
    out.tokenizer = std::move(loaded.tokenizer);
    return out;
  }
  HR_ASSIGN_OR_RETURN(SeqPeWeights weights, LoadSeqPeModel(path));
  const std::string tokenizer_path = (std::filesystem::path(path) / "tokenizer.model").string();
  std::error_code ec;
  if (std::filesystem::exists(tokenizer_path, ec)) {
    HR_ASSIGN_OR_RETURN(out.tokenizer, LoadSentencePieceTokenizer(tokenizer_path));
    HR_RETURN_IF_ERROR(
        CheckTokenizerFits(out.tokenizer.get(), weights.config.vocab_size, tokenizer_path));
  }
  HR_ASSIGN_OR_RETURN(out.model, ServeSeqPe(std::move(weights)));
  return out;
}

}  // namespace hr
