// One layer's attention for the new tokens of one sequence on the device
// (internal to the CUDA backend). First the summaries of the chunks the step
// completes (range by range with the longheads summary, which needs each
// chunk's queries; otherwise one launch): scoring a query in chunk c reads
// chunks 1 .. c-2 only. Then a step of at most decode_max_queries tokens
// scores and selects range by range (one chunk each) into its rows of the
// batch's decode lists, and the caller attends over the rows of all its
// decode steps together (AttendDecodeRows: the split-K decode kernel, one
// launch for consecutive decode entries of a batch); a longer step (prefill)
// scores, selects and attends over the whole span, one launch each
// (sub-spans of whole chunks where the per-query scratch would pass 64 MB).
// The rules are hr::PagedSequence's (server/longctx/paged_sequence.h).
//
// REQUIRES: the sequence's K/V for these tokens are already in this layer's
// blocks (the model appends the whole batch first), and its blocks reserved.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_ATTENTION_STEP_H_
#define HEADROOM_SERVER_BACKEND_CUDA_ATTENTION_STEP_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/rope.h"
#include "server/backend_cuda/cuda_kv_cache.h"
#include "server/backend_cuda/cuda_sequence.h"
#include "server/backend_cuda/forward_scratch.h"
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
  int64_t decode_max_queries = 8;        // steps up to this many tokens use the decode kernel
  // Decode steps: this step's rows of the batch's block lists,
  // [n_tokens][H][decode_stride] (decode_stride >= DecodeListStride), each
  // list right-aligned with -1 before it.
  int32_t* d_decode_blocks = nullptr;
  int32_t decode_stride = 0;
  ForwardScratch* scratch = nullptr;
  cuda::Stream stream = nullptr;
};

absl::Status RunAttentionStep(const AttentionStepArgs& a);

// The longest block list among a decode step's n_tokens queries (its last
// chunk's).
int32_t DecodeListStride(const CudaSequence& sequence, int64_t n_tokens);

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
  const int32_t* d_blocks = nullptr;     // [n_queries][H][stride], as AttentionStepArgs::d_decode_blocks
  int32_t stride = 0;
  void* d_out = nullptr;                 // [n_queries][H·d] of out_dtype
  cuda::DType out_dtype = cuda::DType::kF32;
  ForwardScratch* scratch = nullptr;     // its decode_ws
  cuda::Stream stream = nullptr;
};
absl::Status AttendDecodeRows(const DecodeRowsArgs& a);

// The most bytes RunAttentionStep reserves in a ForwardScratch's scores,
// chunks and prefill_ws for a step of at most n_tokens tokens of a sequence
// whose chunk ids stay below chunk_ids (H heads of head_dim, chunks of
// chunk_size). Queries the current device (prefill split limits).
struct AttentionScratchBound {
  int64_t scores = 0;
  int64_t chunks = 0;
  int64_t prefill_ws = 0;
};
AttentionScratchBound AttentionScratchBytesBound(const ModelConfig& config, int64_t n_tokens, int64_t chunk_ids,
                                                 int64_t chunk_size, int64_t decode_max_queries);

// The end of the prefill sub-span that starts at step index i0 (of n tokens
// from position p0, chunks of w): at most max_queries tokens, ending on a
// chunk boundary unless it reaches n, and at least up to the end of i0's chunk
// (per-chunk score sums need a chunk's queries in one span).
int64_t PrefillSubSpanEnd(int64_t p0, int64_t i0, int64_t n, int64_t w, int64_t max_queries);

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_ATTENTION_STEP_H_
