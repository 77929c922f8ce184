// The span a prefill attention kernel covers (internal to kernels/cuda): its
// query tiles (span_tiles.h) and the arguments both prefill kernels take.
#ifndef HEADROOM_KERNELS_CUDA_PREFILL_SPAN_CUH_
#define HEADROOM_KERNELS_CUDA_PREFILL_SPAN_CUH_

#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/span_tiles.h"

namespace hr::cuda {

// PrefillAttentionParams as a kernel reads them.
struct PrefillSpanArgs {
  const float* q_local;
  int64_t pos0;
  int n_queries;
  int n_heads;
  int group;  // query heads per KV head
  const int32_t* chunks;  // nullptr: dense lists (ListEntry)
  int list_stride;
  SpanTiles tiles;
  const int32_t* block_table;
  PagedKvLayer kv;
  const float* step_cos;
  const float* step_sin;
  bool adjacent;
  float scale_log2;
  OutRows out;
};

// Entry i of list `row` (query · n_heads + head) of a query in chunk c:
// read, or for dense lists (chunks == nullptr) computed: chunk
// i − (list_stride − 1 − c), and −1 before the list.
__device__ __forceinline__ int ListEntry(const PrefillSpanArgs& a, int64_t row, int i, int c) {
  if (a.chunks == nullptr) {
    const int j = i - (a.list_stride - 1 - c);
    return j >= 0 ? j : -1;
  }
  return __ldg(a.chunks + row * a.list_stride + i);
}

inline PrefillSpanArgs MakePrefillSpanArgs(const PrefillAttentionParams& p, int tile_rows) {
  PrefillSpanArgs a;
  a.q_local = p.d_q_local;
  a.pos0 = p.pos0;
  a.n_queries = p.n_queries;
  a.n_heads = p.n_heads;
  a.group = p.n_heads / p.kv.n_kv_heads;
  a.chunks = p.d_chunks;
  a.list_stride = p.list_stride;
  a.tiles = SpanTiles::Make(p.pos0, p.n_queries, p.kv.chunk_size, tile_rows);
  a.block_table = p.d_block_table;
  a.kv = p.kv;
  a.step_cos = p.rope->d_step_cos();
  a.step_sin = p.rope->d_step_sin();
  a.adjacent = p.rope->style() == RopeStyle::kAdjacent;
  a.scale_log2 = p.scale * kLog2e;
  a.out = MakeOutRows(p.d_out, p.out_dtype);
  return a;
}

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_PREFILL_SPAN_CUH_
