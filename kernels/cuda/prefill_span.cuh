// The span a prefill attention kernel covers (internal to kernels/cuda): its
// query tiles and the arguments both prefill kernels take.
#ifndef HEADROOM_KERNELS_CUDA_PREFILL_SPAN_CUH_
#define HEADROOM_KERNELS_CUDA_PREFILL_SPAN_CUH_

#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"

namespace hr::cuda {

// The queries at positions pos0 .. pos0+n-1 of one sequence cut into tiles of
// at most `rows` queries that never cross a chunk boundary, numbered chunk by
// chunk. The kernels take them last first: a later chunk's tiles have more
// keys to read, and starting them first shortens the tail of a causal span.

struct SpanTiles {
  int n = 0;                // queries in the span
  int chunk_size = 0;
  int rows = 0;             // queries per tile
  int first_len = 0;        // queries in the span's first chunk
  int tiles_first = 0;      // tiles of the first chunk
  int tiles_per_chunk = 0;  // tiles of every later chunk (the last may have fewer)

  __host__ __device__ static SpanTiles Make(int64_t pos0, int n, int chunk_size, int rows) {
    SpanTiles t;
    t.n = n;
    t.chunk_size = chunk_size;
    t.rows = rows;
    const int64_t room = chunk_size - pos0 % chunk_size;
    t.first_len = static_cast<int>(n < room ? n : room);
    t.tiles_first = (t.first_len + rows - 1) / rows;
    t.tiles_per_chunk = (chunk_size + rows - 1) / rows;
    return t;
  }

  __host__ __device__ int Total() const {
    const int rest = n - first_len;
    return tiles_first + rest / chunk_size * tiles_per_chunk + (rest % chunk_size + rows - 1) / rows;
  }

  // Tile b's queries: span indices [*q0, *q_end) (empty past the last tile).
  __host__ __device__ void Range(int b, int* q0, int* q_end) const {
    int start = 0, end = first_len;
    if (b >= tiles_first) {
      b -= tiles_first;
      start = first_len + b / tiles_per_chunk * chunk_size;
      end = start + chunk_size < n ? start + chunk_size : n;
      b %= tiles_per_chunk;
    }
    *q0 = start + b * rows;
    *q_end = *q0 + rows < end ? *q0 + rows : end;
    if (*q_end < *q0) *q_end = *q0;
  }
};

// PrefillAttentionParams as a kernel reads them.
struct PrefillSpanArgs {
  const float* q_local;
  int64_t pos0;
  int n_queries;
  int n_heads;
  int group;  // query heads per KV head
  const int32_t* chunks;
  int list_stride;
  SpanTiles tiles;
  const int32_t* block_table;
  PagedKvLayer kv;
  const float* step_cos;
  const float* step_sin;
  bool adjacent;
  float scale_log2;
  float* out;
};

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
  a.out = p.d_out;
  return a;
}

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_PREFILL_SPAN_CUH_
