#include "server/longctx/seqpe/seqpe_paged_sequence.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/slot_attention.h"
#include "server/common/status.h"
#include "server/longctx/chunk_selection.h"
#include "server/longctx/chunk_summary.h"
#include "server/model/seqpe/seqpe_attention.h"

namespace hr {

absl::StatusOr<std::unique_ptr<SeqPePagedSequence>> SeqPePagedSequence::Create(
    const SeqPeConfig& config, const LongContextParams& params, BlockPool* pool,
    PositionTable* table) {
  HR_RETURN_IF_ERROR(params.Validate());
  if (config.apply != PeApply::kAttnScalar) {
    return absl::UnimplementedError(
        "long-context policies over SeqPE need the attn_scalar form (input_add adds positions "
        "at the input, at absolute positions)");
  }
  if (params.prefill != PrefillSelection::kPerToken) {
    return absl::UnimplementedError("SeqPE long-context attention selects per token only");
  }
  const KvGeometry& g = pool->geometry();
  if (g.n_layers != config.n_layers || g.n_heads != config.n_heads ||
      g.n_kv_heads != config.n_heads || g.head_dim != config.head_dim) {
    return absl::InvalidArgumentError("KV pool geometry does not match the model");
  }
  return std::unique_ptr<SeqPePagedSequence>(new SeqPePagedSequence(config, params, pool, table));
}

SeqPePagedSequence::SeqPePagedSequence(const SeqPeConfig& config, const LongContextParams& params,
                                       BlockPool* pool, PositionTable* table)
    : config_(config),
      params_(params),
      pool_(pool),
      table_(table),
      chunk_queries_(config.n_layers * config.n_heads * params.chunk_size * config.head_dim) {}

SeqPePagedSequence::~SeqPePagedSequence() {
  for (int32_t b : blocks_) pool_->Release(b);
}

void SeqPePagedSequence::AdoptPrefix(std::span<const int32_t> blocks) {
  HR_CHECK(length_ == 0 && blocks_.empty(), "AdoptPrefix needs an empty sequence");
  for (int32_t b : blocks) {
    HR_CHECK(pool_->chunk_size(b) == params_.chunk_size, "adopted block of another chunk size");
    pool_->Retain(b);
    blocks_.push_back(b);
  }
  length_ = static_cast<int64_t>(blocks.size()) * params_.chunk_size;
}

absl::Status SeqPePagedSequence::Append(int layer, int64_t n_tokens, const float* q, const float* k,
                                        const float* v) {
  const int64_t w = params_.chunk_size;
  const int64_t d = config_.head_dim;
  const int64_t H = config_.n_heads;
  const int64_t width = H * d;
  const int64_t last_chunk = (length_ + n_tokens - 1) / w;
  while (static_cast<int64_t>(blocks_.size()) <= last_chunk) {
    HR_CHECK(layer == 0, "blocks are allocated at layer 0");
    absl::StatusOr<int32_t> block = pool_->Allocate(static_cast<int32_t>(w));
    if (!block.ok()) return block.status();
    blocks_.push_back(*block);
  }
  std::vector<float> buf(2 * w * d + w * w + w + d);
  float* layer_queries = chunk_queries_.data() + static_cast<int64_t>(layer) * H * w * d;
  for (int64_t i = 0; i < n_tokens; ++i) {
    const int64_t p = length_ + i;
    const int64_t c = p / w;
    const int64_t u = p % w;
    pool_->Write(blocks_[c], layer, u, k + i * width, v + i * width);
    for (int64_t h = 0; h < H; ++h) {
      std::memcpy(layer_queries + (h * w + u) * d, q + i * width + h * d, sizeof(float) * d);
    }
    if (u != w - 1) continue;
    const int32_t block = blocks_[c];
    float* keys_buf = buf.data();
    float* values_buf = keys_buf + w * d;
    float* scratch = values_buf + w * d;
    for (int64_t h = 0; h < H; ++h) {
      const float* keys = pool_->Keys(block, layer, h, w, keys_buf);
      BoundSummary(keys, w, d, pool_->BoundSummary(block, layer) + h * 2 * d);
      MeanSummary(keys, w, d, pool_->MeanSummary(block, layer) + h * d);
      const float* values = pool_->Values(block, layer, h, w, values_buf);
      LongHeadsSummary(layer_queries + h * w * d, keys, values, w, d, /*adjacent_layout=*/false,
                       scratch, pool_->LongHeadsSummary(block, layer) + h * d);
    }
    ++stats_.summaries_built;
  }
  return absl::OkStatus();
}

absl::Status SeqPePagedSequence::Forward(int layer, int64_t n_tokens, const float* q,
                                         const float* k, const float* v, float* out) {
  HR_CHECK(layer >= 0 && layer < config_.n_layers, "layer out of range");
  const int64_t w = params_.chunk_size;
  const int64_t d = config_.head_dim;
  const int64_t H = config_.n_heads;
  const int64_t width = H * d;
  const int64_t k_slots = params_.slots();
  // The largest window position this call reads: p itself under `full` or
  // while the sequence fits the window, never more than atten_length - 1.
  int64_t max_pos = length_ + n_tokens - 1;
  if (params_.policy != AttentionPolicy::kFull) max_pos = std::min(max_pos, k_slots * w - 1);
  HR_RETURN_IF_ERROR(table_->Ensure(max_pos + 1));  // OUT_OF_RANGE past the digit budget
  HR_RETURN_IF_ERROR(Append(layer, n_tokens, q, k, v));

  const SummaryKind kind = params_.summary;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const bool converted = pool_->dtype() != KvDType::kF32;
  const int64_t max_keys = (params_.policy == AttentionPolicy::kFull
                                ? (length_ + n_tokens + w - 1) / w
                                : std::min<int64_t>((length_ + n_tokens + w - 1) / w, k_slots)) *
                           w;
  int64_t scored = 0, selected = 0, attended = 0;
  const bool threads = n_tokens * H * max_keys * d > (int64_t{1} << 16);
#pragma omp parallel reduction(+ : scored, selected, attended) if (threads)
  {
    std::vector<int32_t> list;
    std::vector<float> chunk_scores, scores(max_keys), kv_buf(converted ? w * d : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t job = 0; job < n_tokens * H; ++job) {
      const int64_t i = job / H, h = job % H;
      const int64_t p = length_ + i;
      const int64_t c = p / w, u = p % w;
      const float* qh = q + i * width + h * d;
      if (NeedsScores(params_, c)) {
        chunk_scores.assign(c + 1, 0.0f);
        for (int64_t j = 1; j <= c - 2; ++j) {
          const int32_t block = blocks_[j];
          const float* summary =
              kind == SummaryKind::kLongHeads ? pool_->LongHeadsSummary(block, layer) + h * d
              : kind == SummaryKind::kBound   ? pool_->BoundSummary(block, layer) + h * 2 * d
                                              : pool_->MeanSummary(block, layer) + h * d;
          chunk_scores[j] = ScoreChunk(kind, qh, summary, d);
        }
        scored += c - 2;
      }
      SelectChunks(params_, c, chunk_scores.data(), &list);
      const int64_t own_slot = static_cast<int64_t>(list.size()) - 1;
      const int64_t m = own_slot * w + u;  // the query's window position
      const float* row_m = table_->Row(m);
      const int64_t hb = config_.multi_head ? h : 0;
      int64_t n_total = 0;
      for (int64_t s = 0; s <= own_slot; ++s) {
        const int32_t block = blocks_[list[s]];
        const int64_t n_keys = list[s] == c ? u + 1 : w;
        const float* keys =
            pool_->Keys(block, layer, h, n_keys, converted ? kv_buf.data() : nullptr);
        float* sc = scores.data() + n_total;
        cpu::DotRows(qh, keys, n_keys, d, sc);
        for (int64_t t = 0; t < n_keys; ++t) {
          sc[t] = sc[t] * scale + PositionBias(config_, row_m, table_->Row(s * w + t), hb);
        }
        n_total += n_keys;
      }
      cpu::Softmax(scores.data(), n_total);
      float* o = out + i * width + h * d;
      std::fill(o, o + d, 0.0f);
      n_total = 0;
      for (int64_t s = 0; s <= own_slot; ++s) {
        const int32_t block = blocks_[list[s]];
        const int64_t n_keys = list[s] == c ? u + 1 : w;
        const float* values =
            pool_->Values(block, layer, h, n_keys, converted ? kv_buf.data() : nullptr);
        cpu::AccumulateWeightedRows(scores.data() + n_total, values, n_keys, d, o);
        n_total += n_keys;
      }
      selected += own_slot + 1;
      attended += n_total;
      if (observer_ != nullptr) {
#pragma omp critical(hr_seqpe_selection_observer)
        observer_->OnSelection(layer, static_cast<int>(h), p, list);
      }
    }
  }
  stats_.chunks_scored += scored;
  stats_.chunks_selected += selected;
  stats_.keys_attended += attended;
  return absl::OkStatus();
}

}  // namespace hr
