#include "server/longctx/paged_sequence.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_small_m.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/slot_attention.h"
#include "server/common/status.h"
#include "server/longctx/chunk_selection.h"
#include "server/longctx/chunk_summary.h"

namespace hr {

absl::StatusOr<std::unique_ptr<PagedSequence>> PagedSequence::Create(const ModelConfig& config,
                                                                     const LongContextParams& params,
                                                                     BlockPool* pool) {
  HR_RETURN_IF_ERROR(params.Validate());
  const KvGeometry& g = pool->geometry();
  if (g.n_layers != config.n_layers || g.n_heads != config.n_heads ||
      g.n_kv_heads != config.n_kv_heads || g.head_dim != config.head_dim) {
    return absl::InvalidArgumentError("KV pool geometry does not match the model");
  }
  return std::unique_ptr<PagedSequence>(new PagedSequence(config, params, pool));
}

PagedSequence::PagedSequence(const ModelConfig& config, const LongContextParams& params,
                             BlockPool* pool)
    : config_(config),
      params_(params),
      pool_(pool),
      rope_(config.head_dim, config.rope_theta, config.rope_linear_scale, config.rope_style),
      steps_(rope_, params.chunk_size),
      chunk_queries_(params.policy == AttentionPolicy::kLongHeads &&
                             params.summary == SummaryKind::kLongHeads
                         ? config.n_layers * config.n_heads * params.chunk_size * config.head_dim
                         : 0),
      score_rows_(config.n_layers,
                  std::vector<std::vector<float>>(params.summary == SummaryKind::kLongHeads
                                                      ? config.n_heads
                                                      : config.n_kv_heads)) {}

PagedSequence::~PagedSequence() {
  for (int32_t b : blocks_) pool_->Release(b);
}

void PagedSequence::Commit(int64_t n_tokens) { length_ += n_tokens; }

void PagedSequence::AdoptPrefix(std::span<const int32_t> blocks) {
  HR_CHECK(length_ == 0 && blocks_.empty(), "AdoptPrefix needs an empty sequence");
  for (int32_t b : blocks) {
    HR_CHECK(pool_->chunk_size(b) == params_.chunk_size, "adopted block of another chunk size");
    pool_->Retain(b);
    blocks_.push_back(b);
    for (int layer = 0; layer < config_.n_layers; ++layer) {
      SetScoreRows(layer, static_cast<int64_t>(blocks_.size()) - 1);
    }
  }
  length_ = static_cast<int64_t>(blocks.size()) * params_.chunk_size;
}

absl::Status PagedSequence::Append(int layer, int64_t n_tokens, const float* q, const float* k,
                                   const float* v, float* q_local_out) {
  const int64_t w = params_.chunk_size;
  const int64_t d = config_.head_dim;
  const int64_t H = config_.n_heads;
  const int64_t G = config_.n_kv_heads;
  const int64_t group = H / G;
  const int64_t q_width = H * d;
  const int64_t kv_width = G * d;
  const cpu::Rope& rope = rope_;

  // Blocks for every chunk this call touches (allocated while running layer
  // 0; a failed call leaves them for the retry, nothing is committed).
  const int64_t last_chunk = (length_ + n_tokens - 1) / w;
  while (static_cast<int64_t>(blocks_.size()) <= last_chunk) {
    HR_CHECK(layer == 0, "blocks are allocated at layer 0");
    absl::StatusOr<int32_t> block = pool_->Allocate(static_cast<int32_t>(w));
    if (!block.ok()) return block.status();
    blocks_.push_back(*block);
  }

  // Keys get local RoPE, values are stored as they are; queries are kept
  // (local RoPE) for the longheads summary of the chunk they complete.
  std::vector<float> k_local(kv_width);
  std::vector<float> key_scratch(2 * w * d + w * w + w + d);
  // Only the scored summary is built (prefix-cache blocks are shared only
  // between sequences with the same parameters), and only for longheads.
  const bool summarize = params_.policy == AttentionPolicy::kLongHeads;
  const bool keep_queries = summarize && params_.summary == SummaryKind::kLongHeads;
  float* layer_queries =
      keep_queries ? chunk_queries_.data() + static_cast<int64_t>(layer) * H * w * d : nullptr;
  for (int64_t i = 0; i < n_tokens; ++i) {
    const int64_t p = length_ + i;
    const int64_t c = p / w;
    const int64_t u = p % w;
    std::memcpy(k_local.data(), k + i * kv_width, sizeof(float) * kv_width);
    rope.Apply(k_local.data(), G, static_cast<double>(u));
    pool_->Write(blocks_[c], layer, u, k_local.data(), v + i * kv_width);
    float* ql = q_local_out + i * q_width;
    std::memcpy(ql, q + i * q_width, sizeof(float) * q_width);
    rope.Apply(ql, H, static_cast<double>(u));
    if (keep_queries) {
      for (int64_t h = 0; h < H; ++h) {
        std::memcpy(layer_queries + (h * w + u) * d, ql + h * d, sizeof(float) * d);
      }
    }
    if (u != w - 1 || !summarize) continue;
    const int32_t block = blocks_[c];
    float* keys_buf = key_scratch.data();
    float* values_buf = keys_buf + w * d;
    float* scratch = values_buf + w * d;
    for (int64_t g = 0; g < G; ++g) {
      const float* keys = pool_->Keys(block, layer, g, w, keys_buf);
      if (params_.summary == SummaryKind::kBound) {
        BoundSummary(keys, w, d, pool_->BoundSummary(block, layer) + g * 2 * d);
      } else if (params_.summary == SummaryKind::kMean) {
        MeanSummary(keys, w, d, pool_->MeanSummary(block, layer) + g * d);
      }
      if (!keep_queries) continue;
      const float* values = pool_->Values(block, layer, g, w, values_buf);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        LongHeadsSummary(layer_queries + h * w * d, keys, values, w, d,
                         config_.rope_style == RopeStyle::kAdjacent, scratch,
                         pool_->LongHeadsSummary(block, layer) + h * d);
      }
    }
    SetScoreRows(layer, c);
    ++stats_.summaries_built;
  }

  return absl::OkStatus();
}

absl::Status PagedSequence::Forward(int layer, int64_t n_tokens, const float* q, const float* k,
                                    const float* v, float* out) {
  const int64_t w = params_.chunk_size;
  // 1. Store the new keys and values, build summaries of completed chunks.
  std::vector<float> q_local(n_tokens * config_.n_heads * config_.head_dim);
  HR_RETURN_IF_ERROR(Append(layer, n_tokens, q, k, v, q_local.data()));
  // 2. Queries, one chunk at a time: scratch stays linear in the context
  //    however many tokens the caller passes.
  for (int64_t i0 = 0; i0 < n_tokens;) {
    const int64_t i1 = std::min(n_tokens, ((length_ + i0) / w + 1) * w - length_);
    AttendChunkQueries(layer, i0, i1, q, q_local.data(), out);
    i0 = i1;
  }
  return absl::OkStatus();
}

void PagedSequence::SetScoreRows(int layer, int64_t chunk) {
  if (params_.policy != AttentionPolicy::kLongHeads) return;
  const int64_t d = config_.head_dim;
  const int32_t block = blocks_[chunk];
  // Rows are written in place, so a forward call retried after an error
  // rewrites the same rows.
  auto row = [&](int64_t head, int64_t width) {
    std::vector<float>& rows = score_rows_[layer][head];
    if (static_cast<int64_t>(rows.size()) < (chunk + 1) * width) rows.resize((chunk + 1) * width);
    return rows.data() + chunk * width;
  };
  switch (params_.summary) {
    case SummaryKind::kLongHeads: {
      const float* s = pool_->LongHeadsSummary(block, layer);
      for (int64_t h = 0; h < config_.n_heads; ++h) std::copy_n(s + h * d, d, row(h, d));
      break;
    }
    case SummaryKind::kBound: {
      // Σ max(q·max, q·min) = q·(max+min)/2 + |q|·(max-min)/2 per channel, so
      // the bound score is one dot product of [q, |q|] with [centre, radius].
      const float* s = pool_->BoundSummary(block, layer);
      for (int64_t g = 0; g < config_.n_kv_heads; ++g) {
        const float* mn = s + g * 2 * d;
        const float* mx = mn + d;
        float* r = row(g, 2 * d);
        for (int64_t k = 0; k < d; ++k) r[k] = 0.5f * (mx[k] + mn[k]);
        for (int64_t k = 0; k < d; ++k) r[d + k] = 0.5f * (mx[k] - mn[k]);
      }
      break;
    }
    case SummaryKind::kMean: {
      const float* s = pool_->MeanSummary(block, layer);
      for (int64_t g = 0; g < config_.n_kv_heads; ++g) std::copy_n(s + g * d, d, row(g, d));
      break;
    }
  }
}

int64_t PagedSequence::ScoreRowIndex(int64_t n, int64_t i, int64_t h) const {
  const int64_t per_head = SummaryHeadQueries();
  return (h / per_head * n + i) * per_head + h % per_head;
}

int64_t PagedSequence::SummaryHeadQueries() const {
  return params_.summary == SummaryKind::kLongHeads ? 1 : config_.n_heads / config_.n_kv_heads;
}

void PagedSequence::ScoreCandidates(int layer, int64_t i0, int64_t n, int64_t c, const float* q,
                                    float* scores) const {
  const int64_t d = config_.head_dim;
  const int64_t H = config_.n_heads;
  const int64_t q_width = H * d;
  const int64_t n_chunks = c + 1;
  const int64_t n_cand = c - 2;  // candidates are chunks 1 .. c-2
  const bool bound = params_.summary == SummaryKind::kBound;
  const int64_t K = bound ? 2 * d : d;
  // Summary heads: one per query head (longheads) or per KV head (bound,
  // mean); the rows of one summary head are consecutive in `scores`, so each
  // is one product of all its queries (n · per_head rows) with the candidates'
  // summaries, written in place (BLAS threads it).
  const int64_t per_head = SummaryHeadQueries();
  std::vector<float> x(n * per_head * K);  // rows (i, hh): q, then |q| for bound
  for (int64_t sh = 0; sh < H / per_head; ++sh) {
    const std::vector<float>& rows = score_rows_[layer][sh];
    HR_CHECK(static_cast<int64_t>(rows.size()) >= (c - 1) * K, "score rows behind the chunks");
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t hh = 0; hh < per_head; ++hh) {
        const float* src = q + (i0 + i) * q_width + (sh * per_head + hh) * d;
        float* dst = x.data() + (i * per_head + hh) * K;
        std::copy(src, src + d, dst);
        if (bound) {
          for (int64_t k = 0; k < d; ++k) dst[d + k] = std::fabs(src[k]);
        }
      }
    }
    // Equal summaries must score equally (ties go to the lower chunk): BLAS
    // sgemv does not promise that across rows, the small-m kernel and sgemm do.
    const float* cand = rows.data() + K;  // from chunk 1
    float* y = scores + ScoreRowIndex(n, 0, sh * per_head) * n_chunks + 1;
    if (n * per_head <= cpu::kSmallMMax) {
      cpu::MatMulWtSmallM(x.data(), n * per_head, K, cand, n_cand, y, n_chunks);
    } else {
      cpu::MatMulWt(x.data(), n * per_head, K, cand, n_cand, y, n_chunks);
    }
  }
}

void PagedSequence::AttendChunkQueries(int layer, int64_t i0, int64_t i1, const float* q,
                                       const float* q_local, float* out) {
  const int64_t w = params_.chunk_size;
  const int64_t d = config_.head_dim;
  const int64_t H = config_.n_heads;
  const int64_t G = config_.n_kv_heads;
  const int64_t group = H / G;
  const int64_t q_width = H * d;
  const int64_t n = i1 - i0;
  const int64_t c = (length_ + i0) / w;  // every query of the range is in chunk c
  const int64_t n_chunks = c + 1;

  // Chunk scores (longheads past the window): row ScoreRowIndex(n, i, h) of
  // n_chunks floats holds query i's, head h's scores of candidates j = 1 .. c-2,
  // aggregated per GQA and prefill mode.
  const bool scored = NeedsScores(params_, c);
  std::vector<float>& scores = scores_;
  if (scored) {
    // Only candidate entries are written and read (the buffer is reused).
    if (static_cast<int64_t>(scores.size()) < n * H * n_chunks) scores.resize(n * H * n_chunks);
    ScoreCandidates(layer, i0, n, c, q, scores.data());
    stats_.chunks_scored += n * H * (c - 2);
    // GQA per KV head: the group's first head holds the group's summed scores.
    if (params_.gqa == GqaSelection::kPerKvHead && group > 1) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t g = 0; g < G; ++g) {
          float* first = scores.data() + ScoreRowIndex(n, i, g * group) * n_chunks;
          for (int64_t h = g * group + 1; h < (g + 1) * group; ++h) {
            const float* row = scores.data() + ScoreRowIndex(n, i, h) * n_chunks;
            for (int64_t j = 1; j <= c - 2; ++j) first[j] += row[j];
          }
        }
      }
    }
    // Prefill per chunk: the range's first query holds the range's summed scores.
    if (params_.prefill == PrefillSelection::kPerChunk && n > 1) {
      for (int64_t h = 0; h < H; ++h) {
        float* first = scores.data() + ScoreRowIndex(n, 0, h) * n_chunks;
        for (int64_t i = 1; i < n; ++i) {
          const float* row = scores.data() + ScoreRowIndex(n, i, h) * n_chunks;
          for (int64_t j = 1; j <= c - 2; ++j) first[j] += row[j];
        }
      }
    }
  }
  // The scores query i of head h selects with (after the aggregations above).
  const auto score_row = [&](int64_t i, int64_t h) {
    const int64_t sh = params_.gqa == GqaSelection::kPerKvHead ? h / group * group : h;
    const int64_t si = params_.prefill == PrefillSelection::kPerChunk ? 0 : i;
    return scores.data() + ScoreRowIndex(n, si, sh) * n_chunks;
  };

  // Attention, per head: the range's queries grouped by the (chunk, slot
  // distance) pairs they read, each chunk folded into all of its queries at
  // once (design.md §3, "union of chunks"), so a chunk's keys and values are
  // read once per range and head, not once per query.
  const int64_t max_steps =
      params_.policy == AttentionPolicy::kFull ? n_chunks : std::min<int64_t>(n_chunks, params_.slots());
  steps_.Reserve(max_steps);
  // Without per-query scores every query of the range reads the same list;
  // chunk mode shares one list per head over the range.
  std::vector<std::vector<int32_t>> shared_lists;
  if (!scored) {
    shared_lists.assign(H, {});
    SelectChunks(params_, c, nullptr, &shared_lists[0]);
    for (int64_t h = 1; h < H; ++h) shared_lists[h] = shared_lists[0];
  } else if (params_.prefill == PrefillSelection::kPerChunk) {
    shared_lists.resize(H);
    for (int64_t h = 0; h < H; ++h) SelectChunks(params_, c, score_row(0, h), &shared_lists[h]);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const bool converted = pool_->dtype() != KvDType::kF32;
  const int64_t u0 = (length_ + i0) % w;  // offset of the range's first query in chunk c
  int64_t selected = 0, attended = 0;
#pragma omp parallel reduction(+ : selected, attended) if (n * H * std::min(n_chunks, int64_t{params_.slots()}) * w * d > (int64_t{1} << 16))
  {
    struct Pair {  // query `row` reads `chunk` at `steps` chunk sizes before its own slot
      int32_t chunk, steps, row;
      bool operator<(const Pair& o) const {
        return chunk != o.chunk ? chunk < o.chunk : steps != o.steps ? steps < o.steps : row < o.row;
      }
    };
    std::vector<std::vector<int32_t>> own_lists(shared_lists.empty() ? n : 0);
    std::vector<Pair> pairs;
    std::vector<int32_t> rows, all_rows(n);
    std::vector<int64_t> counts, own_counts(n);
    for (int64_t i = 0; i < n; ++i) {
      all_rows[i] = static_cast<int32_t>(i);
      own_counts[i] = u0 + i + 1;  // causal inside the own chunk
    }
    std::vector<float> row_max(n), row_sum(n), scratch(cpu::SlotChunkScratch(w, d));
    std::vector<float> kv_buf(converted ? 2 * w * d : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      cpu::SlotQueryBlock b{q_local + i0 * q_width + h * d, q_width, d, scale, &steps_,
                            out + i0 * q_width + h * d, q_width, row_max.data(), row_sum.data()};
      // Folds chunk `chunk` at distance `steps` into rows[0..m).
      auto fold = [&](int32_t chunk, int64_t steps, const int32_t* fold_rows, int64_t m) {
        const bool own = chunk == c;
        const int64_t n_keys = own ? u0 + n : w;
        counts.clear();
        for (int64_t r = 0; r < m; ++r) {
          const int64_t nk = own ? own_counts[fold_rows[r]] : w;
          if (own) counts.push_back(nk);
          attended += nk;
        }
        float* kb = converted ? kv_buf.data() : nullptr;
        const cpu::SlotChunk sc{pool_->Keys(blocks_[chunk], layer, g, n_keys, kb),
                                pool_->Values(blocks_[chunk], layer, g, n_keys, kb ? kb + w * d : nullptr),
                                n_keys, steps};
        cpu::AttendSlotChunk(b, sc, fold_rows, own ? counts.data() : nullptr, m, scratch.data());
      };
      cpu::BeginSlotQueries(b, n);
      if (!shared_lists.empty()) {
        const std::vector<int32_t>& list = shared_lists[h];
        const int64_t own_slot = static_cast<int64_t>(list.size()) - 1;
        for (int64_t s = 0; s <= own_slot; ++s) fold(list[s], own_slot - s, all_rows.data(), n);
        selected += n * static_cast<int64_t>(list.size());
      } else {
        pairs.clear();
        for (int64_t i = 0; i < n; ++i) {
          std::vector<int32_t>& list = own_lists[i];
          SelectChunks(params_, c, score_row(i, h), &list);
          const int32_t own_slot = static_cast<int32_t>(list.size()) - 1;
          for (int32_t s = 0; s <= own_slot; ++s) pairs.push_back({list[s], own_slot - s, static_cast<int32_t>(i)});
          selected += static_cast<int64_t>(list.size());
        }
        std::sort(pairs.begin(), pairs.end());
        for (size_t p0 = 0; p0 < pairs.size();) {
          size_t p1 = p0;
          rows.clear();
          while (p1 < pairs.size() && pairs[p1].chunk == pairs[p0].chunk && pairs[p1].steps == pairs[p0].steps) {
            rows.push_back(pairs[p1++].row);
          }
          fold(pairs[p0].chunk, pairs[p0].steps, rows.data(), static_cast<int64_t>(rows.size()));
          p0 = p1;
        }
      }
      cpu::FinishSlotQueries(b, n);
      if (observer_ != nullptr) {
#pragma omp critical(hr_selection_observer)
        for (int64_t i = 0; i < n; ++i) {
          observer_->OnSelection(layer, static_cast<int>(h), length_ + i0 + i,
                                 shared_lists.empty() ? own_lists[i] : shared_lists[h]);
        }
      }
    }
  }
  stats_.chunks_selected += selected;
  stats_.keys_attended += attended;
}

absl::Status PagedSequence::AppendSyntheticForBenchmark(int64_t n_tokens, uint64_t seed) {
  const int64_t q_width = config_.n_heads * config_.head_dim;
  const int64_t kv_width = config_.n_kv_heads * config_.head_dim;
  const int64_t step = params_.chunk_size;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t done = 0; done < n_tokens; done += step) {
    const int64_t n = std::min(step, n_tokens - done);
    std::vector<float> q(n * q_width), k(n * kv_width), v(n * kv_width), q_local(n * q_width);
    for (int layer = 0; layer < config_.n_layers; ++layer) {
      for (float& x : q) x = normal(rng);
      for (float& x : k) x = normal(rng);
      for (float& x : v) x = normal(rng);
      HR_RETURN_IF_ERROR(Append(layer, n, q.data(), k.data(), v.data(), q_local.data()));
    }
    Commit(n);
  }
  return absl::OkStatus();
}

}  // namespace hr
