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

// Splits of one chunk's prefill attention over chunk ids (tensor-core kernel).
constexpr int32_t kPrefillMaxSplits = 16;

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

}  // namespace

bool NeedsRawQueries(const CudaSequence& sequence, int64_t n_tokens) {
  const int64_t last_chunk = (sequence.length() + n_tokens - 1) / sequence.params().chunk_size;
  return NeedsScores(sequence.params(), last_chunk);
}

absl::Status RunAttentionStep(const AttentionStepArgs& a) {
  const ModelConfig& cfg = *a.config;
  CudaSequence& seq = *a.sequence;
  const LongContextParams& params = seq.params();
  const int64_t w = params.chunk_size;
  const int64_t H = cfg.n_heads, d = cfg.head_dim;
  const int64_t q_width = H * d;
  const int64_t p0 = seq.length();
  const cuda::PagedKvLayer kv = a.cache->Layer(a.layer);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  ForwardScratch& s = *a.scratch;

  for (int64_t i0 = 0; i0 < a.n_tokens;) {
    const int64_t i1 = std::min(a.n_tokens, ((p0 + i0) / w + 1) * w - p0);
    const int64_t nq = i1 - i0;
    const int64_t c = (p0 + i0) / w;
    const float* q_local = a.d_q_local + i0 * q_width;

    // Summaries of chunk c once this range completes it (what scoring needs:
    // only the longheads policy reads them).
    if (seq.keeps_chunk_queries()) {
      HR_CUDA_OK(backend_cuda::ScatterChunkQueries(q_local, nq, p0 + i0, w, H, d,
                                                   seq.d_chunk_queries(a.layer), a.stream),
                 "ScatterChunkQueries");
    }
    if (params.policy == AttentionPolicy::kLongHeads && (p0 + i1) % w == 0) {
      cuda::ChunkSummaryParams sp;
      sp.kv = kv;
      sp.d_blocks = seq.d_block_table() + c;
      sp.n_chunks = 1;
      sp.d_queries = seq.keeps_chunk_queries() ? seq.d_chunk_queries(a.layer) : nullptr;
      sp.n_heads = static_cast<int32_t>(H);
      sp.adjacent_layout = cfg.rope_style == RopeStyle::kAdjacent;
      sp.out = a.cache->Summaries(a.layer);
      sp.stream = a.stream;
      HR_CUDA_OK(cuda::BuildChunkSummaries(sp), "BuildChunkSummaries");
      ++seq.mutable_stats().summaries_built;
    }

    // Chunk scores and selection.
    const cuda::SlotPolicy policy = ToSlotPolicy(params.policy);
    const int32_t list_len = cuda::SlotListLength(policy, params.slots(), static_cast<int32_t>(c));
    const bool scored = NeedsScores(params, c);
    // The work counters, as hr::PagedSequence counts them: every list ends
    // with the query's own chunk, read up to the query.
    PagedSequenceStats& stats = seq.mutable_stats();
    if (scored) stats.chunks_scored += nq * H * (c - 2);
    stats.chunks_selected += nq * H * list_len;
    for (int64_t i = i0; i < i1; ++i) stats.keys_attended += H * ((list_len - 1) * w + (p0 + i) % w + 1);
    if (scored) {
      HR_RETURN_IF_ERROR(s.scores.Reserve(nq * H * (c + 1) * int64_t{4}));
      cuda::ChunkScoreParams cp;
      cp.d_q = a.d_q_raw + i0 * q_width;
      cp.n_queries = static_cast<int32_t>(nq);
      cp.n_heads = static_cast<int32_t>(H);
      cp.n_kv_heads = static_cast<int32_t>(cfg.n_kv_heads);
      cp.head_dim = static_cast<int32_t>(d);
      cp.summaries = a.cache->Summaries(a.layer);
      cp.kind = ToScoreKind(params.summary);
      cp.d_block_table = seq.d_block_table();
      cp.n_chunks = static_cast<int32_t>(c + 1);
      cp.sum_over_group = params.gqa == GqaSelection::kPerKvHead;
      cp.d_scores = s.scores.as<float>();
      cp.stream = a.stream;
      HR_CUDA_OK(cuda::ScoreChunks(cp), "ScoreChunks");
      if (params.prefill == PrefillSelection::kPerChunk) {
        HR_CUDA_OK(backend_cuda::SumScoresOverQueries(s.scores.as<float>(), nq, H, c + 1, a.stream),
                   "SumScoresOverQueries");
      }
    }
    const int64_t list_bytes = nq * H * list_len * int64_t{4};
    HR_RETURN_IF_ERROR(s.chunks.Reserve(list_bytes));
    HR_RETURN_IF_ERROR(s.blocks.Reserve(list_bytes));
    cuda::SelectChunksParams sel;
    sel.policy = policy;
    sel.slots = params.slots();
    sel.c = static_cast<int32_t>(c);
    sel.n_queries = static_cast<int32_t>(nq);
    sel.n_heads = static_cast<int32_t>(H);
    sel.d_scores = scored ? s.scores.as<float>() : nullptr;
    sel.d_block_table = seq.d_block_table();
    sel.d_chunks = s.chunks.as<int32_t>();
    sel.d_blocks = s.blocks.as<int32_t>();
    sel.stream = a.stream;
    HR_CUDA_OK(cuda::SelectChunks(sel), "SelectChunks");

    // Attention over the lists.
    float* out = a.d_out + i0 * q_width;
    if (nq <= a.decode_max_queries) {
      cuda::DecodeAttentionParams dp;
      dp.d_q_local = q_local;
      dp.d_positions = a.d_positions + i0;
      dp.d_blocks = s.blocks.as<int32_t>();
      dp.list_len = list_len;
      dp.n_queries = static_cast<int32_t>(nq);
      dp.n_heads = static_cast<int32_t>(H);
      dp.kv = kv;
      dp.rope = a.rope;
      dp.scale = scale;
      dp.d_out = out;
      dp.d_workspace = s.decode_ws.as<float>();
      dp.workspace_bytes = static_cast<size_t>(s.decode_ws.bytes());
      dp.stream = a.stream;
      HR_CUDA_OK(cuda::DecodeAttention(dp), "DecodeAttention");
    } else {
      cuda::PrefillAttentionParams pp;
      pp.d_q_local = q_local;
      pp.pos0 = p0 + i0;
      pp.n_queries = static_cast<int32_t>(nq);
      pp.n_heads = static_cast<int32_t>(H);
      pp.d_chunks = s.chunks.as<int32_t>();
      pp.list_len = list_len;
      pp.d_block_table = seq.d_block_table();
      pp.kv = kv;
      pp.rope = a.rope;
      pp.scale = scale;
      pp.d_out = out;
      const int64_t ws_bytes = static_cast<int64_t>(cuda::PrefillAttentionWorkspaceBytes(
          static_cast<int32_t>(nq), static_cast<int32_t>(H), static_cast<int32_t>(d), kPrefillMaxSplits));
      HR_RETURN_IF_ERROR(s.prefill_ws.Reserve(ws_bytes));
      pp.d_workspace = s.prefill_ws.as<float>();
      pp.workspace_bytes = static_cast<size_t>(s.prefill_ws.bytes());
      pp.max_splits = kPrefillMaxSplits;
      pp.stream = a.stream;
      HR_CUDA_OK(cuda::PrefillAttention(pp), "PrefillAttention");
    }
    i0 = i1;
  }
  return absl::OkStatus();
}

}  // namespace hr
