#include "server/backend_cuda/attention_step.h"

#include <algorithm>
#include <cmath>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/paged_kv.h"
#include "kernels/cuda/selection.h"
#include "server/backend_cuda/model_kernels.h"
#include "server/common/status.h"
#include "server/longctx/chunk_selection.h"

namespace hr {
namespace {

// Splits of a prefill span's attention over chunk ids (tensor-core kernel).
constexpr int32_t kPrefillMaxSplits = 16;
// Bytes of each per-query scratch buffer (scores, lists) one prefill span
// may use: about this much, and at least one chunk's worth.
constexpr int64_t kSpanScratchBytes = int64_t{64} << 20;

cuda::SlotPolicy ToSlotPolicy(AttentionPolicy p) {
  switch (p) {
    case AttentionPolicy::kFull:
      return cuda::SlotPolicy::kFull;
    case AttentionPolicy::kWindow:
      return cuda::SlotPolicy::kWindow;
    case AttentionPolicy::kLongHeads:
      break;
  }
  return cuda::SlotPolicy::kLongHeads;
}

cuda::ScoreKind ToScoreKind(SummaryKind k) {
  switch (k) {
    case SummaryKind::kLongHeads:
      return cuda::ScoreKind::kLongHeads;
    case SummaryKind::kBound:
      return cuda::ScoreKind::kBound;
    case SummaryKind::kMean:
      break;
  }
  return cuda::ScoreKind::kMean;
}

// Full attention's lists (chunks 0 .. c) are dense: PrefillAttention
// computes them (d_chunks = nullptr), so they are neither selected nor stored.
bool DenseLists(cuda::SlotPolicy policy) { return policy == cuda::SlotPolicy::kFull; }

}  // namespace

int64_t PrefillSubSpanEnd(int64_t p0, int64_t i0, int64_t n, int64_t w, int64_t max_queries) {
  const int64_t i1 = std::min(n, i0 + std::max<int64_t>(1, max_queries));
  if (i1 == n) return n;
  const int64_t aligned = (p0 + i1) / w * w - p0;  // back to a chunk boundary
  return aligned > i0 ? aligned : std::min(n, ((p0 + i0) / w + 1) * w - p0);
}

namespace {

// What one layer's step needs besides its arguments.
struct StepContext {
  const AttentionStepArgs& a;
  CudaSequence& seq;
  const LongContextParams& params;
  int64_t w, H, d, q_width, p0;
  cuda::PagedKvLayer kv;
  cuda::SlotPolicy policy;
  float scale;
};

// Chunk scores of the queries [i0, i0 + nq) (in chunks up to c_last), into
// scratch.scores with rows of c_last + 1 entries; for per-chunk prefill
// selection, summed over each chunk's queries.
absl::Status Score(const StepContext& x, int64_t i0, int64_t nq, int64_t c_last) {
  ForwardScratch& s = *x.a.scratch;
  HR_RETURN_IF_ERROR(s.scores.Reserve(nq * x.H * (c_last + 1) * int64_t{4}));
  cuda::ChunkScoreParams cp;
  cp.d_q = x.a.d_q_raw + i0 * x.a.q_raw_stride;
  cp.q_stride = x.a.q_raw_stride;
  cp.n_queries = static_cast<int32_t>(nq);
  cp.n_heads = static_cast<int32_t>(x.H);
  cp.n_kv_heads = static_cast<int32_t>(x.a.config->n_kv_heads);
  cp.head_dim = static_cast<int32_t>(x.d);
  cp.summaries = x.a.cache->Summaries(x.a.layer);
  cp.kind = ToScoreKind(x.params.summary);
  cp.d_block_table = x.seq.d_block_table();
  cp.n_chunks = static_cast<int32_t>(c_last + 1);
  cp.pos0 = x.p0 + i0;
  cp.chunk_size = static_cast<int32_t>(x.w);
  cp.sum_over_group = x.params.gqa == GqaSelection::kPerKvHead;
  cp.d_scores = s.scores.as<float>();
  cp.stream = x.a.stream;
  HR_CUDA_OK(cuda::ScoreChunks(cp), "ScoreChunks");
  if (x.params.prefill == PrefillSelection::kPerChunk) {
    HR_CUDA_OK(backend_cuda::SumScoresOverQueries(s.scores.as<float>(), nq, x.H, c_last + 1, x.p0 + i0, x.w,
                                                  x.a.stream),
               "SumScoresOverQueries");
  }
  return absl::OkStatus();
}

// Lists of the queries [i0, i0 + nq) (in chunks up to c_last), right-aligned
// in rows of `stride` entries (chunks; blocks too when d_blocks is given).
absl::Status Select(const StepContext& x, int64_t i0, int64_t nq, int64_t c_last, bool scored, int32_t stride,
                    int32_t* d_chunks, int32_t* d_blocks = nullptr) {
  cuda::SelectChunksParams sel;
  sel.policy = x.policy;
  sel.slots = x.params.slots();
  sel.c = static_cast<int32_t>(c_last);
  sel.pos0 = x.p0 + i0;
  sel.chunk_size = static_cast<int32_t>(x.w);
  sel.n_queries = static_cast<int32_t>(nq);
  sel.n_heads = static_cast<int32_t>(x.H);
  sel.d_scores = scored ? x.a.scratch->scores.as<float>() : nullptr;
  sel.d_block_table = x.seq.d_block_table();
  sel.d_chunks = d_chunks;
  sel.d_blocks = d_blocks;
  sel.row_stride = stride;
  sel.stream = x.a.stream;
  HR_CUDA_OK(cuda::SelectChunks(sel), "SelectChunks");
  return absl::OkStatus();
}

// The work counters of queries [i0, i1), as hr::PagedSequence counts them:
// every list ends with the query's own chunk, read up to the query.
void Count(const StepContext& x, int64_t i0, int64_t i1) {
  PagedSequenceStats& stats = x.seq.mutable_stats();
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t c = (x.p0 + i) / x.w;
    const int32_t len = cuda::SlotListLength(x.policy, x.params.slots(), static_cast<int32_t>(c));
    if (NeedsScores(x.params, c)) stats.chunks_scored += x.H * (c - 2);
    stats.chunks_selected += x.H * len;
    stats.keys_attended += x.H * ((len - 1) * x.w + (x.p0 + i) % x.w + 1);
  }
}

// Prefill attention of the queries [i0, i1) (a span of whole chunks, but
// for its ends): scores, lists and one PrefillAttention launch.
absl::Status PrefillSpan(const StepContext& x, int64_t i0, int64_t i1) {
  const AttentionStepArgs& a = x.a;
  ForwardScratch& s = *a.scratch;
  const int64_t n = i1 - i0, c_last = (x.p0 + i1 - 1) / x.w;
  const bool scored = NeedsScores(x.params, c_last);
  if (scored) HR_RETURN_IF_ERROR(Score(x, i0, n, c_last));
  const int32_t stride = cuda::SlotListLength(x.policy, x.params.slots(), static_cast<int32_t>(c_last));
  const bool dense = DenseLists(x.policy);
  if (!dense) {
    HR_RETURN_IF_ERROR(s.chunks.Reserve(n * x.H * stride * int64_t{4}));
    HR_RETURN_IF_ERROR(Select(x, i0, n, c_last, scored, stride, s.chunks.as<int32_t>()));
  }
  cuda::PrefillAttentionParams pp;
  pp.d_q_local = a.d_q_local + i0 * x.q_width;
  pp.pos0 = x.p0 + i0;
  pp.n_queries = static_cast<int32_t>(n);
  pp.n_heads = static_cast<int32_t>(x.H);
  pp.d_chunks = dense ? nullptr : s.chunks.as<int32_t>();
  pp.list_stride = stride;
  pp.d_block_table = x.seq.d_block_table();
  pp.kv = x.kv;
  pp.rope = a.rope;
  pp.scale = x.scale;
  pp.d_out = cuda::AdvanceElems(a.d_out, a.out_dtype, i0 * x.q_width);
  pp.out_dtype = a.out_dtype;
  pp.max_splits = kPrefillMaxSplits;
  pp.stream = a.stream;
  HR_RETURN_IF_ERROR(s.prefill_ws.Reserve(static_cast<int64_t>(cuda::PrefillAttentionWorkspaceWanted(pp))));
  pp.d_workspace = s.prefill_ws.as<float>();
  pp.workspace_bytes = static_cast<size_t>(s.prefill_ws.bytes());
  HR_CUDA_OK(cuda::PrefillAttention(pp), "PrefillAttention");
  return absl::OkStatus();
}

}  // namespace

absl::Status RunAttentionStep(const AttentionStepArgs& a) {
  const ModelConfig& cfg = *a.config;
  CudaSequence& seq = *a.sequence;
  const LongContextParams& params = seq.params();
  const StepContext x{a,
                      seq,
                      params,
                      params.chunk_size,
                      cfg.n_heads,
                      cfg.head_dim,
                      cfg.n_heads * cfg.head_dim,
                      seq.length(),
                      a.cache->Layer(a.layer),
                      ToSlotPolicy(params.policy),
                      1.0f / std::sqrt(static_cast<float>(cfg.head_dim))};
  const int64_t w = x.w, H = x.H, p0 = x.p0, n = a.n_tokens;
  ForwardScratch& s = *a.scratch;
  const int64_t c_last = (p0 + n - 1) / w;

  // Summaries of the chunks this step completes (only the longheads policy
  // scores them). Scoring a query in chunk c reads chunks 1 .. c-2 only, so
  // they may all be built before any scoring. Without the longheads summary
  // they depend on the keys alone (all in the blocks already): one launch.
  // The longheads summary needs each chunk's queries, kept range by range.
  if (params.policy == AttentionPolicy::kLongHeads) {
    const bool queries = seq.keeps_chunk_queries();
    for (int64_t i0 = 0; i0 < n;) {
      const int64_t i1 = queries ? std::min(n, ((p0 + i0) / w + 1) * w - p0) : n;
      if (queries) {
        HR_CUDA_OK(backend_cuda::ScatterChunkQueries(a.d_q_local + i0 * x.q_width, i1 - i0, p0 + i0, w, H, x.d,
                                                     seq.d_chunk_queries(a.layer), a.stream),
                   "ScatterChunkQueries");
      }
      const int64_t done_first = (p0 + i0) / w, done_end = (p0 + i1) / w;  // chunks completed in [i0, i1)
      if (done_end > done_first) {
        cuda::ChunkSummaryParams sp;
        sp.kv = x.kv;
        sp.d_blocks = seq.d_block_table() + done_first;
        sp.n_chunks = static_cast<int32_t>(done_end - done_first);
        sp.d_queries = queries ? seq.d_chunk_queries(a.layer) : nullptr;
        sp.n_heads = static_cast<int32_t>(H);
        sp.adjacent_layout = cfg.rope_style == RopeStyle::kAdjacent;
        sp.out = a.cache->Summaries(a.layer);
        sp.stream = a.stream;
        HR_CUDA_OK(cuda::BuildChunkSummaries(sp), "BuildChunkSummaries");
        seq.mutable_stats().summaries_built += sp.n_chunks;
      }
      i0 = i1;
    }
  }
  Count(x, 0, n);

  if (n > a.decode_max_queries) {
    // Prefill: score, select and attend over the span, one launch each; lists
    // right-aligned in rows of the longest (the last chunk's). The per-query
    // scratch (scores and lists, up to H·(c+1) entries each) is bounded: a long
    // step at a long context goes in sub-spans of whole chunks.
    const int64_t per_query = H * (c_last + 1) * int64_t{4};
    const int64_t max_queries = std::max<int64_t>(1, kSpanScratchBytes / per_query);
    // Sized once for the largest sub-span (a Reserve that grows frees, and so
    // waits for, the device).
    const int64_t span_bytes = std::min(n, std::max(max_queries, w)) * per_query;
    if (!DenseLists(x.policy)) HR_RETURN_IF_ERROR(s.chunks.Reserve(span_bytes));
    if (NeedsScores(params, c_last)) HR_RETURN_IF_ERROR(s.scores.Reserve(span_bytes));
    for (int64_t i0 = 0; i0 < n;) {
      const int64_t i1 = PrefillSubSpanEnd(p0, i0, n, w, max_queries);
      HR_RETURN_IF_ERROR(PrefillSpan(x, i0, i1));
      i0 = i1;
    }
    return absl::OkStatus();
  }

  // Decode (a few tokens): the caller attends over the rows of all the
  // batch's decode steps (AttendDecodeRows) and, unless the step selects its
  // own rows here, selects them too (SelectDecodeRows).
  if (a.d_decode_blocks == nullptr) {
    return SelectsOwnDecodeRows(params, n)
               ? absl::InternalError("a decode step that selects its own rows was given none")
               : absl::OkStatus();
  }
  if (a.decode_stride < DecodeListStride(seq, n)) return absl::InternalError("decode rows narrower than the lists");
  HR_RETURN_IF_ERROR(s.chunks.Reserve(n * H * a.decode_stride * int64_t{4}));
  for (int64_t c = p0 / w; c <= c_last; ++c) {  // range by range: one or two chunks
    const int64_t i0 = std::max<int64_t>(0, c * w - p0), i1 = std::min(n, (c + 1) * w - p0);
    const bool scored = NeedsScores(params, c);
    if (scored) HR_RETURN_IF_ERROR(Score(x, i0, i1 - i0, c));
    HR_RETURN_IF_ERROR(Select(x, i0, i1 - i0, c, scored, a.decode_stride, s.chunks.as<int32_t>(),
                              a.d_decode_blocks + i0 * H * a.decode_stride));
  }
  return absl::OkStatus();
}

bool SelectsOwnDecodeRows(const LongContextParams& params, int64_t n_tokens) {
  return params.policy == AttentionPolicy::kLongHeads && params.prefill == PrefillSelection::kPerChunk &&
         n_tokens > 1;
}

bool SameDecodeSelection(const LongContextParams& a, const LongContextParams& b) {
  if (a.policy != b.policy || a.chunk_size != b.chunk_size) return false;
  if (a.policy == AttentionPolicy::kFull) return true;  // chunks 0 .. c
  if (a.slots() != b.slots()) return false;
  return a.policy == AttentionPolicy::kWindow || (a.summary == b.summary && a.gqa == b.gqa);
}

absl::Status SelectDecodeRows(const DecodeSelectArgs& a) {
  const ModelConfig& cfg = *a.config;
  const LongContextParams& params = *a.params;
  ForwardScratch& s = *a.scratch;
  const int64_t H = cfg.n_heads;
  if (a.scored) {
    HR_RETURN_IF_ERROR(s.scores.Reserve(a.n_queries * H * (a.last_chunk + 1) * int64_t{4}));
    cuda::ChunkScoreParams cp;
    cp.d_q = a.d_q_raw;
    cp.q_stride = a.q_raw_stride;
    cp.n_queries = static_cast<int32_t>(a.n_queries);
    cp.n_heads = static_cast<int32_t>(H);
    cp.n_kv_heads = static_cast<int32_t>(cfg.n_kv_heads);
    cp.head_dim = static_cast<int32_t>(cfg.head_dim);
    cp.summaries = a.summaries;
    cp.kind = ToScoreKind(params.summary);
    cp.n_chunks = a.last_chunk + 1;
    cp.chunk_size = params.chunk_size;
    cp.sum_over_group = params.gqa == GqaSelection::kPerKvHead;
    cp.d_scores = s.scores.as<float>();
    cp.rows = a.rows;
    cp.stream = a.stream;
    HR_CUDA_OK(cuda::ScoreChunks(cp), "ScoreChunks (decode rows)");
  }
  HR_RETURN_IF_ERROR(s.chunks.Reserve(a.n_queries * H * a.stride * int64_t{4}));
  cuda::SelectChunksParams sel;
  sel.policy = ToSlotPolicy(params.policy);
  sel.slots = params.slots();
  sel.c = a.last_chunk;
  sel.chunk_size = params.chunk_size;
  sel.n_queries = static_cast<int32_t>(a.n_queries);
  sel.n_heads = static_cast<int32_t>(H);
  sel.d_scores = a.scored ? s.scores.as<float>() : nullptr;
  sel.d_chunks = s.chunks.as<int32_t>();
  sel.d_blocks = a.d_blocks;
  sel.row_stride = a.stride;
  sel.rows = a.rows;
  sel.stream = a.stream;
  HR_CUDA_OK(cuda::SelectChunks(sel), "SelectChunks (decode rows)");
  return absl::OkStatus();
}

AttentionScratchBound AttentionScratchBytesBound(const ModelConfig& config, int64_t n_tokens, int64_t chunk_ids,
                                                 int64_t chunk_size, int64_t decode_rows) {
  // One (query, head) row of scores or of a list: at most one entry per chunk id.
  const int64_t per_query = config.n_heads * std::max<int64_t>(1, chunk_ids) * int64_t{4};
  // Prefill sub-spans reserve min(n, max(kSpanScratchBytes / per_query, w))
  // rows: at most kSpanScratchBytes (or one row) when that many rows fit, else
  // a chunk's rows. A batch's decode rows reserve a row each.
  const int64_t span = std::min(n_tokens * per_query,
                                std::max(kSpanScratchBytes, std::min(n_tokens, chunk_size) * per_query));
  const int64_t rows = std::max(span, decode_rows * per_query);
  AttentionScratchBound b;
  b.scores = rows;
  b.chunks = rows;
  b.prefill_ws = static_cast<int64_t>(cuda::PrefillAttentionWorkspaceBound(
      static_cast<int32_t>(n_tokens), static_cast<int32_t>(config.n_heads), static_cast<int32_t>(config.head_dim),
      kPrefillMaxSplits));
  return b;
}

int32_t DecodeListStride(const CudaSequence& sequence, int64_t n_tokens) {
  const LongContextParams& params = sequence.params();
  const int64_t c_last = (sequence.length() + n_tokens - 1) / params.chunk_size;
  return cuda::SlotListLength(ToSlotPolicy(params.policy), params.slots(), static_cast<int32_t>(c_last));
}

absl::Status AttendDecodeRows(const DecodeRowsArgs& a) {
  ForwardScratch& s = *a.scratch;
  cuda::DecodeAttentionParams dp;
  dp.d_q_local = a.d_q_local;
  dp.d_positions = a.d_positions;
  dp.d_blocks = a.d_blocks;
  dp.list_len = a.stride;
  dp.n_queries = static_cast<int32_t>(a.n_queries);
  dp.n_heads = static_cast<int32_t>(a.n_heads);
  dp.kv = a.kv;
  dp.rope = a.rope;
  dp.scale = a.scale;
  dp.d_out = a.d_out;
  dp.out_dtype = a.out_dtype;
  dp.d_workspace = s.decode_ws.as<float>();
  dp.workspace_bytes = static_cast<size_t>(s.decode_ws.bytes());
  dp.stream = a.stream;
  HR_CUDA_OK(cuda::DecodeAttention(dp), "DecodeAttention");
  return absl::OkStatus();
}

}  // namespace hr
