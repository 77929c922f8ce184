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
  // 2. Queries in blocks of whole chunks (at least kAttendBlockQueries
  //    queries, or one chunk): selection chunk by chunk (scores are one
  //    chunk's queries × the candidates, linear in the context), then one
  //    attention over the union of the block's chunks. Scratch stays linear
  //    in the context however many tokens the caller passes.
  std::vector<RangeSelection> ranges;
  for (int64_t i0 = 0; i0 < n_tokens;) {
    ranges.clear();
    for (const int64_t b0 = i0; i0 < n_tokens && i0 - b0 < std::max(w, kAttendBlockQueries);) {
      const int64_t i1 = std::min(n_tokens, ((length_ + i0) / w + 1) * w - length_);
      ranges.emplace_back();
      SelectRange(layer, i0, i1, q, &ranges.back());
      i0 = i1;
    }
    AttendRanges(layer, ranges, q_local.data(), out);
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
  // summaries, written in place. Large products are threaded inside (BLAS);
  // small ones (decode: one query, ~0.3 MB of summaries per head at 128K)
  // are run one summary head per thread, as the small-m kernel keeps a
  // product that small on one thread.
  const int64_t per_head = SummaryHeadQueries();
  const int64_t n_summary_heads = H / per_head;
  const int64_t rows_per_head = n * per_head;
  const bool small = rows_per_head <= cpu::kSmallMMax;
  const int64_t head_work = rows_per_head * n_cand * K;
#pragma omp parallel if (small && head_work < (int64_t{1} << 20) && n_summary_heads * head_work > (int64_t{1} << 16))
  {
    std::vector<float> x(rows_per_head * K);  // rows (i, hh): q, then |q| for bound
#pragma omp for schedule(static)
    for (int64_t sh = 0; sh < n_summary_heads; ++sh) {
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
      if (small) {
        cpu::MatMulWtSmallM(x.data(), rows_per_head, K, cand, n_cand, y, n_chunks);
      } else {
        cpu::MatMulWt(x.data(), rows_per_head, K, cand, n_cand, y, n_chunks);
      }
    }
  }
}

const int32_t* PagedSequence::RangeSelection::List(int64_t i, int64_t h, int64_t* len) const {
  if (!shared.empty()) {
    *len = static_cast<int64_t>(shared[h].size());
    return shared[h].data();
  }
  *len = slots;
  return own.data() + ((i - i0) * static_cast<int64_t>(n_heads) + h) * slots;
}

void PagedSequence::SelectRange(int layer, int64_t i0, int64_t i1, const float* q,
                                RangeSelection* sel) {
  const int64_t w = params_.chunk_size;
  const int64_t H = config_.n_heads;
  const int64_t G = config_.n_kv_heads;
  const int64_t group = H / G;
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

  sel->i0 = i0;
  sel->i1 = i1;
  sel->c = c;
  sel->n_heads = static_cast<int32_t>(H);
  sel->shared.clear();
  sel->own.clear();
  // Without per-query scores every query of the range reads the same list;
  // chunk mode shares one list per head over the range.
  if (!scored) {
    sel->shared.assign(H, {});
    SelectChunks(params_, c, nullptr, &sel->shared[0]);
    for (int64_t h = 1; h < H; ++h) sel->shared[h] = sel->shared[0];
    return;
  }
  if (params_.prefill == PrefillSelection::kPerChunk) {
    sel->shared.resize(H);
    for (int64_t h = 0; h < H; ++h) SelectChunks(params_, c, score_row(0, h), &sel->shared[h]);
    return;
  }
  // Exact mode: a list of slots() chunks per (query, head).
  const int64_t k = params_.slots();
  sel->slots = k;
  sel->own.resize(n * H * k);
#pragma omp parallel if (n * H * c > (int64_t{1} << 14))
  {
    std::vector<int32_t> list;
#pragma omp for schedule(static)
    for (int64_t job = 0; job < n * H; ++job) {
      SelectChunks(params_, c, score_row(job / H, job % H), &list);
      HR_CHECK(static_cast<int64_t>(list.size()) == k, "a longheads list fills every slot");
      std::copy(list.begin(), list.end(), sel->own.begin() + job * k);
    }
  }
}

void PagedSequence::AttendOneQuery(int layer, const RangeSelection& r, const float* q_local,
                                   float* out) {
  const int64_t w = params_.chunk_size;
  const int64_t d = config_.head_dim;
  const int64_t H = config_.n_heads;
  const int64_t group = H / config_.n_kv_heads;
  const int64_t p = length_ + r.i0;
  steps_.Reserve(params_.policy == AttentionPolicy::kFull ? r.c + 1
                                                          : std::min<int64_t>(r.c + 1, params_.slots()));
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const bool converted = pool_->dtype() != KvDType::kF32;
  int64_t selected = 0, attended = 0;
#pragma omp parallel reduction(+ : selected, attended) if (H * std::min<int64_t>(r.c + 1, params_.slots()) * w * d > (int64_t{1} << 16))
  {
    std::vector<cpu::SlotChunk> slots;
    std::vector<float> scratch(w + d), kv_buf;
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      int64_t len = 0;
      const int32_t* list = r.List(r.i0, h, &len);
      if (converted) kv_buf.resize(2 * len * w * d);
      slots.clear();
      for (int64_t s = 0; s < len; ++s) {
        const int32_t chunk = list[s];
        const int64_t n_keys = chunk == p / w ? p % w + 1 : w;  // causal in its own chunk
        float* kb = converted ? kv_buf.data() + 2 * s * w * d : nullptr;
        slots.push_back({pool_->Keys(blocks_[chunk], layer, h / group, n_keys, kb),
                         pool_->Values(blocks_[chunk], layer, h / group, n_keys, kb ? kb + w * d : nullptr),
                         n_keys, len - 1 - s});
        attended += n_keys;
      }
      selected += len;
      if (observer_ != nullptr) {
#pragma omp critical(hr_selection_observer)
        observer_->OnSelection(layer, static_cast<int>(h), p, {list, static_cast<size_t>(len)});
      }
      cpu::SlotAttentionParams sp;
      sp.q_local = q_local + r.i0 * H * d + h * d;
      sp.chunks = slots.data();
      sp.n_chunks = len;
      sp.head_dim = d;
      sp.scale = scale;
      sp.steps = &steps_;
      sp.out = out + r.i0 * H * d + h * d;
      sp.scratch = scratch.data();
      cpu::SlotAttention(sp);
    }
  }
  stats_.chunks_selected += selected;
  stats_.keys_attended += attended;
}

void PagedSequence::AttendRanges(int layer, std::span<const RangeSelection> ranges,
                                 const float* q_local, float* out) {
  // A lone query (decode) reads each of its chunks once anyway: the
  // per-query kernel, without the block's bucketing.
  if (ranges.size() == 1 && ranges.front().i1 - ranges.front().i0 == 1) {
    AttendOneQuery(layer, ranges.front(), q_local, out);
    return;
  }
  const int64_t w = params_.chunk_size;
  const int64_t d = config_.head_dim;
  const int64_t H = config_.n_heads;
  const int64_t group = H / config_.n_kv_heads;
  const int64_t q_width = H * d;
  const int64_t b0 = ranges.front().i0;
  const int64_t nq = ranges.back().i1 - b0;  // queries of the block: rows 0 .. nq-1
  const int64_t n_chunks = ranges.back().c + 1;
  // Keys a chunk holds up to the block's last query.
  const auto keys_in = [&](int64_t chunk) { return std::min(w, length_ + b0 + nq - chunk * w); };
  int64_t max_steps = 1;
  for (const RangeSelection& r : ranges) {
    max_steps = std::max<int64_t>(max_steps, params_.policy == AttentionPolicy::kFull
                                                 ? r.c + 1
                                                 : std::min<int64_t>(r.c + 1, params_.slots()));
  }
  steps_.Reserve(max_steps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const bool converted = pool_->dtype() != KvDType::kF32;
  int64_t selected = 0, attended = 0;
#pragma omp parallel reduction(+ : selected, attended) if (nq * H * std::min(n_chunks, int64_t{params_.slots()}) * w * d > (int64_t{1} << 16))
  {
    // The block's reads of one head, bucketed by chunk (a counting sort):
    // readers of chunk j are [first[j], first[j + 1]).
    std::vector<int64_t> first(n_chunks + 1);
    std::vector<int32_t> rows, steps;
    std::vector<int64_t> counts;
    std::vector<float> row_max(nq), row_sum(nq), scratch(cpu::SlotChunkScratch(w, d));
    std::vector<float> kv_buf(converted ? 2 * w * d : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t h = 0; h < H; ++h) {
      std::fill(first.begin(), first.end(), 0);
      int64_t reads = 0;
      for (const RangeSelection& r : ranges) {
        for (int64_t i = r.i0; i < r.i1; ++i) {
          int64_t len = 0;
          const int32_t* list = r.List(i, h, &len);
          for (int64_t s = 0; s < len; ++s) ++first[list[s] + 1];
          reads += len;
          if (observer_ != nullptr) {
#pragma omp critical(hr_selection_observer)
            observer_->OnSelection(layer, static_cast<int>(h), length_ + i, {list, static_cast<size_t>(len)});
          }
        }
      }
      selected += reads;
      for (int64_t j = 0; j < n_chunks; ++j) first[j + 1] += first[j];
      rows.resize(reads);
      steps.resize(reads);
      counts.resize(reads);
      for (const RangeSelection& r : ranges) {
        for (int64_t i = r.i0; i < r.i1; ++i) {
          int64_t len = 0;
          const int32_t* list = r.List(i, h, &len);
          const int64_t p = length_ + i;
          for (int64_t s = 0; s < len; ++s) {
            const int64_t at = first[list[s]]++;
            rows[at] = static_cast<int32_t>(i - b0);
            steps[at] = static_cast<int32_t>(len - 1 - s);
            counts[at] = list[s] == p / w ? p % w + 1 : w;  // causal in its own chunk
            attended += counts[at];
          }
        }
      }
      // first[j] now ends chunk j's readers; they start where chunk j-1's end.
      cpu::SlotQueryBlock b{q_local + b0 * q_width + h * d, q_width, d, scale, &steps_,
                            out + b0 * q_width + h * d, q_width, row_max.data(), row_sum.data()};
      cpu::BeginSlotQueries(b, nq);
      const int64_t g = h / group;
      for (int64_t j = 0, begin = 0; j < n_chunks; begin = first[j++]) {
        const int64_t m = first[j] - begin;
        if (m == 0) continue;
        const int64_t n_keys = keys_in(j);
        float* kb = converted ? kv_buf.data() : nullptr;
        const cpu::SlotChunkKeys keys{pool_->Keys(blocks_[j], layer, g, n_keys, kb),
                                      pool_->Values(blocks_[j], layer, g, n_keys, kb ? kb + w * d : nullptr),
                                      n_keys};
        cpu::AttendSlotChunk(b, keys, {rows.data() + begin, steps.data() + begin, counts.data() + begin, m},
                             scratch.data());
      }
      cpu::FinishSlotQueries(b, nq);
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
