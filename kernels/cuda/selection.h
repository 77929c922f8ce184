// Chunk scoring and per-head chunk selection on the device (design.md §3;
// the rules are server/longctx/paged_sequence.h's, the CPU reference is
// server/longctx/chunk_selection.cc, chunk_summary.cc: ScoreChunk).
#ifndef HEADROOM_KERNELS_CUDA_SELECTION_H_
#define HEADROOM_KERNELS_CUDA_SELECTION_H_

#include <cstdint>

#include "kernels/cuda/common.h"
#include "kernels/cuda/paged_kv.h"

namespace hr::cuda {

// Mirrors of hr::SummaryKind and hr::AttentionPolicy (kernels do not depend
// on server/).
enum class ScoreKind { kLongHeads, kBound, kMean };
enum class SlotPolicy { kFull, kWindow, kLongHeads };

// Scores of the candidate chunks 1 .. c-2 for each (query, head) of a query
// in chunk c, from the raw (un-rotated) query:
//   longheads, mean: q · summary;  bound: Σ_c max(q_c·max_c, q_c·min_c).
// With sum_over_group (GQA per-KV-head selection) every head of a group gets
// the group's summed scores (summed in head order, as the CPU does).
// Decode queries of several sequences in one launch (the batch's decode
// steps): query i is at position positions[i], so in chunk
// positions[i] / chunk_size (chunk_size > 0), and reads its own sequence's
// block table tables[i]. REQUIRES (not checked: device data) every query's
// chunk <= the launch's last chunk (ChunkScoreParams: n_chunks - 1,
// SelectChunksParams: c). Unset (positions nullptr): one sequence's queries.
struct DecodeRows {
  const int32_t* positions = nullptr;        // [n_queries]
  const int32_t* const* tables = nullptr;    // [n_queries] device pointers: chunk -> block
};

struct ChunkScoreParams {
  const float* d_q = nullptr;              // [n_queries][q_stride], heads [n_heads][head_dim] first: raw queries
  int64_t q_stride = 0;                    // floats between queries; 0: n_heads · head_dim
  int32_t n_queries = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  SummaryStore summaries;
  ScoreKind kind = ScoreKind::kBound;
  const int32_t* d_block_table = nullptr;  // [n_chunks] chunk -> block
  // Every query in chunk n_chunks - 1 (chunk_size 0), or a span (chunk_size
  // > 0): query i at position pos0 + i is in chunk (pos0 + i) / chunk_size,
  // which must be < n_chunks; its row keeps n_chunks entries.
  int32_t n_chunks = 0;
  int64_t pos0 = 0;
  int32_t chunk_size = 0;
  bool sum_over_group = false;
  // [n_queries][n_heads][n_chunks]; entries 0 and >= c-1 untouched (c: the row's chunk).
  float* d_scores = nullptr;
  DecodeRows rows;  // positions set: queries of several sequences (pos0, d_block_table unused)
  Stream stream = nullptr;
};
// kUnsupported for a span of more than 4 queries with a head size the tiled
// kernel is not compiled for (SupportedHeadDim). Rows of several sequences
// go to the warp kernel, whatever their number.
CudaStatus ScoreChunks(const ChunkScoreParams& p);

// Number of (chunk, slot) entries a query in chunk c reads.
int32_t SlotListLength(SlotPolicy policy, int32_t slots, int32_t c);

// The chunk list of every (query, head), in slot order:
//   full: 0..c;  window (c >= slots): 0, c-slots+2 .. c;
//   longheads (c >= slots): 0, the slots-3 best-scoring of 1..c-2 (higher
//   score first, then lower index; NaN ranks last) in ascending order, c-1, c;
//   otherwise 0..c.
// Exactly hr::SelectChunks. Up to 512 rows (decode): one block per (query,
// head), the slots-3 best taken one at a time (a block-wide arg-best per
// round: O(slots · c / 256)). More rows (prefill): one thread per row, the
// best kept sorted in registers as the candidates pass (O(c · 16)), while
// slots - 3 <= 16 and c - 2 <= 64; beyond, one warp per row, one arg-best per
// round (O(slots · c / 32)).
struct SelectChunksParams {
  SlotPolicy policy = SlotPolicy::kLongHeads;
  int32_t slots = 0;                       // atten_length / chunk_size, >= 3
  // The queries' chunk (chunk_size 0), or the last chunk of a span
  // (chunk_size > 0: query i is in chunk (pos0 + i) / chunk_size <= c).
  int32_t c = 0;
  int64_t pos0 = 0;
  int32_t chunk_size = 0;
  int32_t n_queries = 0;
  int32_t n_heads = 0;
  const float* d_scores = nullptr;         // [n_queries][n_heads][c + 1] (rows of longheads queries in chunks >= slots)
  const int32_t* d_block_table = nullptr;  // [c + 1] chunk -> block
  int32_t* d_chunks = nullptr;             // [n_queries][n_heads][row_stride] chunk per slot
  int32_t* d_blocks = nullptr;             // same shape: block per slot (may be nullptr)
  // Entries per output row; 0: SlotListLength. A longer row holds the list
  // right-aligned with -1 before it (PrefillAttentionParams::list_stride).
  int32_t row_stride = 0;
  DecodeRows rows;  // positions set: queries of several sequences (c their last chunk; pos0, d_block_table unused)
  Stream stream = nullptr;
};
CudaStatus SelectChunks(const SelectChunksParams& p);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_SELECTION_H_
