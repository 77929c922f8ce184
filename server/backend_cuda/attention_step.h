// One layer's attention for the new tokens of one sequence on the device
// (internal to the CUDA backend). First the summaries of the chunks the step
// completes (range by range with the longheads summary, which needs each
// chunk's queries; otherwise one launch): scoring a query in chunk c reads
// chunks 1 .. c-2 only. A step of at most decode_max_queries tokens (decode)
// stops there: the caller scores, selects and attends over the rows of all
// the batch's decode steps together (SelectDecodeRows, then
// AttendDecodeRows: one launch each for consecutive decode entries of a
// batch, not one per sequence), except for a step that selects its own rows
// (SelectsOwnDecodeRows: it scores and selects range by range, one or two
// chunks, into d_decode_blocks). A longer step (prefill) scores, selects and
// attends over the whole span, one launch each (sub-spans of whole chunks
// where the per-query scratch would pass 64 MB).
// The rules are hr::PagedSequence's (server/longctx/paged_sequence.h).
//
// REQUIRES: the sequence's K/V for these tokens are already in this layer's
// blocks (the model appends the whole batch first), and its blocks reserved.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_ATTENTION_STEP_H_
#define HEADROOM_SERVER_BACKEND_CUDA_ATTENTION_STEP_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/selection.h"
#include "server/backend_cuda/cuda_kv_cache.h"
#include "server/backend_cuda/cuda_sequence.h"
#include "server/backend_cuda/forward_scratch.h"
#include "server/longctx/long_context_params.h"
#include "server/model/config.h"

namespace hr {

struct AttentionStepArgs {
  int64_t layer = 0;
  const ModelConfig* config = nullptr;
  CudaSequence* sequence = nullptr;      // at its uncommitted length: tokens start at length()
  const CudaKvCache* cache = nullptr;
  const cuda::RopeTables* rope = nullptr;  // step chunk_size, enough steps for the longest list
  int64_t n_tokens = 0;
  // [n_tokens][q_raw_stride], heads [H][d] first (e.g. the queries of the
  // QKV rows), read when chunk scores are needed.
  const float* d_q_raw = nullptr;
  int64_t q_raw_stride = 0;
  const float* d_q_local = nullptr;      // [n_tokens][H·d]
  void* d_out = nullptr;                 // [n_tokens][H·d] of out_dtype
  cuda::DType out_dtype = cuda::DType::kF32;  // kF32 or kBF16 (cuda::DecodeAttentionParams)
  int64_t decode_max_queries = 8;        // steps up to this many tokens are decode steps
  // A decode step that SelectsOwnDecodeRows: its rows of the batch's block
  // lists, [n_tokens][H][decode_stride] (decode_stride >= DecodeListStride),
  // each right-aligned with -1 before it. nullptr otherwise.
  int32_t* d_decode_blocks = nullptr;
  int32_t decode_stride = 0;
  ForwardScratch* scratch = nullptr;
  cuda::Stream stream = nullptr;
};

absl::Status RunAttentionStep(const AttentionStepArgs& a);

// The longest block list among a decode step's n_tokens queries (its last
// chunk's).
int32_t DecodeListStride(const CudaSequence& sequence, int64_t n_tokens);

// Whether a decode step of n_tokens selects its own rows (RunAttentionStep)
// rather than with the batch's (SelectDecodeRows): per-chunk selection sums
// the scores of a step's queries in each chunk (hr::PagedSequence), which
// rows of several sequences cannot.
bool SelectsOwnDecodeRows(const LongContextParams& params, int64_t n_tokens);

// Whether two sequences' decode rows are selected by the same rules, so in
// one launch: policy and chunk size; slots but for `full`; summary kind and
// GQA selection for `longheads`.
bool SameDecodeSelection(const LongContextParams& a, const LongContextParams& b);

// Scores (where some row's list is chosen by score) and block lists of
// n_queries consecutive rows of decode steps (of one or more sequences with
// the same selection rules), one ScoreChunks and one SelectChunks launch.
struct DecodeSelectArgs {
  const ModelConfig* config = nullptr;
  const LongContextParams* params = nullptr;  // every row's sequence's (SameDecodeSelection)
  cuda::SummaryStore summaries;               // the layer's chunk summaries
  int64_t n_queries = 0;
  int32_t last_chunk = 0;                     // the largest chunk of a row
  bool scored = false;                        // some row's list is chosen by score (NeedsScores)
  const float* d_q_raw = nullptr;             // [n_queries][q_raw_stride], heads [H][d] first
  int64_t q_raw_stride = 0;
  cuda::DecodeRows rows;                      // each row's position and sequence's block table
  // [n_queries][H][stride] block lists (stride >= every row's DecodeListStride),
  // each right-aligned with -1 before it.
  int32_t* d_blocks = nullptr;
  int32_t stride = 0;
  ForwardScratch* scratch = nullptr;          // its scores and chunks
  cuda::Stream stream = nullptr;
};
absl::Status SelectDecodeRows(const DecodeSelectArgs& a);

// Attention of n_queries consecutive rows of decode steps (of one or more
// sequences) over their block lists, one split-K DecodeAttention launch.
struct DecodeRowsArgs {
  cuda::PagedKvLayer kv;
  const cuda::RopeTables* rope = nullptr;
  int64_t n_queries = 0;
  int64_t n_heads = 0;
  float scale = 0.0f;
  const float* d_q_local = nullptr;      // [n_queries][H·d]
  const int32_t* d_positions = nullptr;  // [n_queries]
  const int32_t* d_blocks = nullptr;     // [n_queries][H][stride], as DecodeSelectArgs::d_blocks
  int32_t stride = 0;
  void* d_out = nullptr;                 // [n_queries][H·d] of out_dtype
  cuda::DType out_dtype = cuda::DType::kF32;
  ForwardScratch* scratch = nullptr;     // its decode_ws
  cuda::Stream stream = nullptr;
};
absl::Status AttendDecodeRows(const DecodeRowsArgs& a);

// The most bytes RunAttentionStep and SelectDecodeRows reserve in a
// ForwardScratch's scores, chunks and prefill_ws for a step of at most
// n_tokens tokens of a sequence, or decode_rows decode rows of a batch, whose
// chunk ids stay below chunk_ids (H heads of head_dim, chunks of chunk_size).
// Queries the current device (prefill split limits).
struct AttentionScratchBound {
  int64_t scores = 0;
  int64_t chunks = 0;
  int64_t prefill_ws = 0;
};
AttentionScratchBound AttentionScratchBytesBound(const ModelConfig& config, int64_t n_tokens, int64_t chunk_ids,
                                                 int64_t chunk_size, int64_t decode_rows);

// The end of the prefill sub-span that starts at step index i0 (of n tokens
// from position p0, chunks of w): at most max_queries tokens, ending on a
// chunk boundary unless it reaches n, and at least up to the end of i0's chunk
// (per-chunk score sums need a chunk's queries in one span).
int64_t PrefillSubSpanEnd(int64_t p0, int64_t i0, int64_t n, int64_t w, int64_t max_queries);

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_ATTENTION_STEP_H_
