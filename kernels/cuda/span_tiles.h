// Query tiles of a prefill span (kernels/cuda/prefill_span.cuh). Plain C++
// so that host tests can check the arithmetic; the kernels compute a tile's
// queries from its block index with it.
#ifndef HEADROOM_KERNELS_CUDA_SPAN_TILES_H_
#define HEADROOM_KERNELS_CUDA_SPAN_TILES_H_

#include <cstdint>

#if defined(__CUDACC__)
#define HR_HOST_DEVICE __host__ __device__
#else
#define HR_HOST_DEVICE
#endif

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

  HR_HOST_DEVICE static SpanTiles Make(int64_t pos0, int n, int chunk_size, int rows) {
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

  HR_HOST_DEVICE int Total() const {
    const int rest = n - first_len;
    return tiles_first + rest / chunk_size * tiles_per_chunk + (rest % chunk_size + rows - 1) / rows;
  }

  // Tile b's queries: span indices [*q0, *q_end) (empty past the last tile).
  HR_HOST_DEVICE void Range(int b, int* q0, int* q_end) const {
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

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_SPAN_TILES_H_
