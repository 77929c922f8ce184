// The paged KV cache in device memory (design.md §3): one block holds one
// chunk of chunk_size tokens, keys stored with local RoPE (rotated by their
// offset inside the chunk), and the chunk's summaries once it completes.
//
// Layout per block and layer, as server/kvcache/block_pool.h on the host:
//   keys    [n_kv_heads][chunk_size][head_dim]   in the store's dtype
//   values  [n_kv_heads][chunk_size][head_dim]
// and, in F32 arrays indexed by block id (one set per layer):
//   longheads [n_heads][head_dim]   bound [n_kv_heads][2][head_dim]   mean [n_kv_heads][head_dim]
#ifndef HEADROOM_KERNELS_CUDA_PAGED_KV_H_
#define HEADROOM_KERNELS_CUDA_PAGED_KV_H_

#include <cstdint>

#include "kernels/cuda/common.h"
#include "kernels/cuda/rope.h"

namespace hr::cuda {

// One layer's view of a device block store.
struct PagedKvLayer {
  void* d_base = nullptr;     // keys of block 0 for this layer (16-byte aligned)
  int64_t block_stride = 0;   // elements from one block to the next
  int64_t value_offset = 0;   // elements from a block's keys to its values
  int32_t chunk_size = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  DType dtype = DType::kF32;
};

// One layer's chunk summaries, indexed by block id.
struct SummaryStore {
  float* d_longheads = nullptr;  // [blocks][n_heads][head_dim]
  float* d_bound = nullptr;      // [blocks][n_kv_heads][2][head_dim] (min, then max)
  float* d_mean = nullptr;       // [blocks][n_kv_heads][head_dim]
};

// Writes n_tokens new positions pos0 .. pos0+n_tokens-1 into their blocks:
// keys rotated by (position mod chunk_size), values as they are, both
// converted (round to nearest even) to the store's dtype.
// Batch form (rows of several sequences in one launch): with d_row_positions
// and d_row_blocks set, row i is written at position d_row_positions[i] into
// block d_row_blocks[i]; d_block_table and pos0 are then ignored.
// With d_q set, the same launch also rotates the rows' queries by the same
// local position into d_q_out (F32; what Rope does with pos_modulus ==
// chunk_size, without a launch and a table read of its own).
struct KvAppendParams {
  PagedKvLayer kv;
  const float* d_k = nullptr;            // [n_tokens][row_stride], heads [n_kv_heads][head_dim] first, un-rotated
  const float* d_v = nullptr;            // [n_tokens][row_stride], likewise
  int64_t row_stride = 0;                // floats between rows of d_k (and d_v); 0: n_kv_heads · head_dim
  const int32_t* d_block_table = nullptr;  // [chunk] -> block, covering every chunk written
  int64_t pos0 = 0;
  const int32_t* d_row_positions = nullptr;  // [n_tokens] (batch form)
  const int32_t* d_row_blocks = nullptr;     // [n_tokens] block holding each row's position (batch form)
  int64_t n_tokens = 0;
  const RopeTables* rope = nullptr;      // head_dim == kv.head_dim, step == kv.chunk_size (local table)
  const float* d_q = nullptr;            // [n_tokens][q_stride], heads [n_q_heads][head_dim] first; optional
  int64_t q_stride = 0;                  // floats; >= n_q_heads · head_dim
  float* d_q_out = nullptr;              // [n_tokens][q_out_stride], the rotated heads first
  int64_t q_out_stride = 0;              // floats; >= n_q_heads · head_dim
  int64_t n_q_heads = 0;
  Stream stream = nullptr;
};
CudaStatus KvAppend(const KvAppendParams& p);

// Builds the summaries of completed chunks (server/longctx/chunk_summary.h):
// bound and mean per KV head from the stored keys, and, when d_queries is
// given, the official code's longheads representation per query head.
struct ChunkSummaryParams {
  PagedKvLayer kv;
  const int32_t* d_blocks = nullptr;  // [n_chunks] blocks of the completed chunks
  int32_t n_chunks = 0;
  // [n_chunks][n_heads][chunk_size][head_dim] the chunks' queries with local
  // RoPE; nullptr skips the longheads summary.
  const float* d_queries = nullptr;
  int32_t n_heads = 0;                // REQUIRES: n_heads % kv.n_kv_heads == 0
  // GGUF (adjacent-pair RoPE) channel order for q̄, see chunk_summary.h.
  bool adjacent_layout = false;
  SummaryStore out;
  Stream stream = nullptr;
};
CudaStatus BuildChunkSummaries(const ChunkSummaryParams& p);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_PAGED_KV_H_
