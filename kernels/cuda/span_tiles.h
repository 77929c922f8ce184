// Query tiles of a prefill span (kernels/cuda/prefill_span.cuh). Plain C++
// so that host tests can check the arithmetic; the kernels compute a tile's
// queries from its block index with it.
#ifndef HEADROOM_KERNELS_CUDA_SPAN_TILES_H_
#define HEADROOM_KERNELS_CUDA_SPAN_TILES_H_

#include <algorithm>
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

// One block of a prefill launch over tiles x splits x heads (a 1-D grid),
// numbered heaviest first across the whole launch: the tiles of later chunks
// (more keys to read) first; a tile's splits and heads side by side, heads
// fastest, so that the query heads of one KV group run together and share its
// keys and values in L2. (A grid of tiles x heads would start every tile of
// head 0, the light ones too, before the heavy tiles of the last head.)
struct SpanBlock {
  int tile = 0;   // SpanTiles::Range index
  int split = 0;  // of the tile's chunk ids, 0 .. n_splits-1
  int head = 0;
};

HR_HOST_DEVICE inline SpanBlock SpanBlockAt(int64_t b, int total_tiles, int n_splits, int n_heads) {
  const int64_t per_tile = static_cast<int64_t>(n_splits) * n_heads;
  SpanBlock s;
  s.tile = total_tiles - 1 - static_cast<int>(b / per_tile);
  s.split = static_cast<int>(b % per_tile / n_heads);
  s.head = static_cast<int>(b % n_heads);
  return s;
}

// Splits of every tile's chunk ids [0, c] (split-K) for a launch of `slots`
// concurrent blocks: enough blocks to fill the slots, and, where the lists
// are dense (full attention: list_stride covers every chunk id of the span),
// enough that the heaviest block holds no more than an even share of the
// span's work, so a causal span's last tiles do not run on alone after the
// rest has finished. A tile in chunk c reads at most min(c + 1, list_stride)
// chunks (its work). Sparse lists are not balanced that way: an even split
// of the chunk ids is not an even split of their entries. No more splits
// than the span's largest chunk-id count, nor than max_splits when that is
// > 0. REQUIRES pos0 >= 0, chunk_size > 0 (1 otherwise). Host only.
inline int PrefillSplits(const SpanTiles& t, int64_t pos0, int list_stride, int n_heads, int64_t slots,
                         int max_splits) {
  const int tiles = t.Total();
  if (tiles <= 0 || n_heads <= 0 || slots <= 0 || pos0 < 0 || t.chunk_size <= 0) return 1;
  int64_t work = 0, heaviest = 0, chunk_ids = 0;
  for (int b = 0; b < tiles; ++b) {
    int q0 = 0, q_end = 0;
    t.Range(b, &q0, &q_end);
    const int64_t ids = (pos0 + q0) / t.chunk_size + 1;
    const int64_t w = std::min<int64_t>(ids, std::max(list_stride, 1));
    work += w;
    heaviest = std::max(heaviest, w);
    chunk_ids = std::max(chunk_ids, ids);
  }
  const int64_t blocks = static_cast<int64_t>(tiles) * n_heads;
  int64_t splits = (slots + blocks - 1) / blocks;  // fill the slots
  if (list_stride >= chunk_ids) {
    // heaviest / splits <= work · n_heads / slots
    splits = std::max(splits, (heaviest * slots + work * n_heads - 1) / (work * n_heads));
  }
  splits = std::min(splits, chunk_ids);
  if (max_splits > 0) splits = std::min<int64_t>(splits, max_splits);
  return static_cast<int>(std::max<int64_t>(splits, 1));
}

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_SPAN_TILES_H_
