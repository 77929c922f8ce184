// Per-(query, head) chunk lists (CPU reference: hr::SelectChunks).
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/selection.h"

namespace hr::cuda {
namespace {

// SlotListLength on both sides (the list of a query in chunk c).
__host__ __device__ inline int32_t SlotListLengthOf(SlotPolicy policy, int32_t slots, int32_t c) {
  return policy == SlotPolicy::kFull || c < slots ? c + 1 : slots;
}

constexpr int kWarps = 8;             // warp kernel: rows per block
constexpr int kBlockThreads = 256;    // block kernel: threads per row
constexpr int64_t kBlockKernelMaxRows = 512;
constexpr int kRowThreads = 128;      // thread kernel: rows per block
constexpr int kThreadMaxNeed = 16;    // thread kernel: chosen chunks kept in registers
constexpr int kThreadMaxCandidates = 64;

__device__ __forceinline__ float RankKey(float s) { return isnan(s) ? -INFINITY : s; }

// Whether candidate a ranks before b (b < 0: no candidate yet; a < 0 never does).
__device__ __forceinline__ bool Better(float ka, int a, float kb, int b) {
  if (a < 0) return false;
  return b < 0 || ka > kb || (ka == kb && a < b);
}

// The best (key, index) over the warp's lanes, in every lane.
__device__ __forceinline__ void WarpArgBest(float& bk, int& bj) {
  for (int o = 16; o > 0; o /= 2) {
    const float ok = __shfl_xor_sync(0xffffffffu, bk, o);
    const int oj = __shfl_xor_sync(0xffffffffu, bj, o);
    if (Better(ok, oj, bk, bj)) {
      bk = ok;
      bj = oj;
    }
  }
}

// Where one row's list goes: its chunk c, list length, and output (right-
// aligned in the row; the -1 padding before it written by threads t0,
// t0 + step, ...).
struct RowOut {
  int c;
  int len;
  const int32_t* table;  // the row's sequence's block table
  int32_t* out;
  int32_t* out_blocks;  // nullptr: no block lists
};

__device__ __forceinline__ RowOut PrepareRow(const SelectChunksParams& p, int64_t row, int t0, int step) {
  RowOut r;
  const int64_t i = row / p.n_heads;
  const bool several = p.rows.positions != nullptr;  // rows of several sequences
  r.c = several            ? static_cast<int>(p.rows.positions[i] / p.chunk_size)
        : p.chunk_size > 0 ? static_cast<int>((p.pos0 + i) / p.chunk_size)
                           : p.c;
  r.table = several ? p.rows.tables[i] : p.d_block_table;
  r.len = SlotListLengthOf(p.policy, p.slots, r.c);
  const int stride = p.row_stride > 0 ? p.row_stride : SlotListLengthOf(p.policy, p.slots, p.c);
  for (int s = t0; s < stride - r.len; s += step) {
    p.d_chunks[row * stride + s] = -1;
    if (p.d_blocks != nullptr) p.d_blocks[row * stride + s] = -1;
  }
  r.out = p.d_chunks + row * stride + (stride - r.len);
  r.out_blocks = p.d_blocks == nullptr ? nullptr : p.d_blocks + row * stride + (stride - r.len);
  return r;
}

// The lists that need no scores (full, window, longheads before `slots`
// chunks); false where the row's list is chosen by score.
__device__ __forceinline__ bool WriteUnscored(const SelectChunksParams& p, const RowOut& r, int t0, int step) {
  const int c = r.c, k = p.slots;
  if (p.policy == SlotPolicy::kLongHeads && c >= k) return false;
  const bool window = p.policy == SlotPolicy::kWindow && c >= k;
  for (int s = t0; s < r.len; s += step) {
    const int chunk = !window || s == 0 ? s : c - k + 1 + s;
    r.out[s] = chunk;
    if (r.out_blocks != nullptr) r.out_blocks[s] = r.table[chunk];
  }
  return true;
}

// A scored list: chunk 0, the `need` chosen chunks in ascending order (each
// one's place is the number of chosen chunks below it), c - 1, c.
__device__ __forceinline__ void WriteScored(const SelectChunksParams& p, const RowOut& r, const int32_t* chosen,
                                            int need, int t0, int step) {
  for (int t = t0; t < need; t += step) {
    const int j = chosen[t];
    int place = 0;
    for (int o = 0; o < need; ++o) place += chosen[o] < j ? 1 : 0;
    r.out[1 + place] = j;
    if (r.out_blocks != nullptr) r.out_blocks[1 + place] = r.table[j];
  }
  if (t0 == 0) {
    r.out[0] = 0;
    r.out[r.len - 2] = r.c - 1;
    r.out[r.len - 1] = r.c;
    if (r.out_blocks != nullptr) {
      r.out_blocks[0] = r.table[0];
      r.out_blocks[r.len - 2] = r.table[r.c - 1];
      r.out_blocks[r.len - 1] = r.table[r.c];
    }
  }
}

// Many rows (prefill): one warp per (query, head). (higher key, then lower
// index) is a strict total order, so round r's pick is the best candidate
// ranked after round r-1's: each round is one pass of the lanes over their
// candidates and a warp arg-best, with no "taken" marks and no block
// barriers.
__global__ void __launch_bounds__(kWarps * 32) SelectWarpKernel(SelectChunksParams p, int64_t rows) {
  extern __shared__ int32_t chosen_all[];  // [kWarps][slots - 3]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kWarps) + warp;
  if (row >= rows) return;
  const RowOut r = PrepareRow(p, row, lane, 32);
  if (WriteUnscored(p, r, lane, 32)) return;
  const int c = r.c, need = p.slots - 3;
  int32_t* chosen = chosen_all + warp * need;
  const float* scores = p.d_scores + row * (p.c + 1);
  float prev_k = INFINITY;
  int prev_j = -1;  // nothing picked yet: every candidate ranks after "nothing"
  for (int round = 0; round < need; ++round) {
    float bk = -INFINITY;
    int bj = -1;
    for (int j = 1 + lane; j <= c - 2; j += 32) {
      const float kj = RankKey(scores[j]);
      const bool after_prev = prev_j < 0 || Better(prev_k, prev_j, kj, j);
      if (after_prev && Better(kj, j, bk, bj)) {
        bk = kj;
        bj = j;
      }
    }
    WarpArgBest(bk, bj);
    if (lane == 0) chosen[round] = bj;
    prev_k = bk;
    prev_j = bj;
  }
  __syncwarp();
  WriteScored(p, r, chosen, need, lane, 32);
}

// Many rows with short candidate lists (prefill up to kThreadMaxCandidates
// candidates, at most kThreadMaxNeed chosen): one thread per (query, head),
// the best `need` so far kept sorted in registers; each candidate, in index
// order, sinks through them (the better of each pair stays). With the strict
// total order of Better the result is the same set as the CPU's. A warp per
// row spent its time in `need` rounds of five-level shuffle reductions for
// ~13 candidates: 48 us per layer for 4096 x 12 rows on an H200
// (bench/results/cuda_h200_prefill.md).
__global__ void __launch_bounds__(kRowThreads) SelectThreadKernel(SelectChunksParams p, int64_t rows) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowThreads) + threadIdx.x;
  if (row >= rows) return;
  const RowOut r = PrepareRow(p, row, 0, 1);
  if (WriteUnscored(p, r, 0, 1)) return;
  const int c = r.c, need = p.slots - 3;
  const float* scores = p.d_scores + row * (p.c + 1);
  float bk[kThreadMaxNeed];
  int bj[kThreadMaxNeed];
#pragma unroll
  for (int t = 0; t < kThreadMaxNeed; ++t) {
    bk[t] = -INFINITY;
    bj[t] = -1;  // empty: every candidate ranks before it
  }
  for (int j = 1; j <= c - 2; ++j) {
    float ck = RankKey(scores[j]);
    int cj = j;
#pragma unroll
    for (int t = 0; t < kThreadMaxNeed; ++t) {
      if (t < need && Better(ck, cj, bk[t], bj[t])) {
        const float k2 = bk[t];
        const int j2 = bj[t];
        bk[t] = ck;
        bj[t] = cj;
        ck = k2;
        cj = j2;
      }
    }
  }
  // Chunk 0, the chosen chunks in ascending order (each one's place is the
  // number of chosen chunks below it), c - 1, c.
#pragma unroll
  for (int t = 0; t < kThreadMaxNeed; ++t) {
    if (t >= need) break;
    int place = 0;
#pragma unroll
    for (int o = 0; o < kThreadMaxNeed; ++o) place += o < need && bj[o] < bj[t] ? 1 : 0;
    r.out[1 + place] = bj[t];
    if (r.out_blocks != nullptr) r.out_blocks[1 + place] = r.table[bj[t]];
  }
  r.out[0] = 0;
  r.out[r.len - 2] = c - 1;
  r.out[r.len - 1] = c;
  if (r.out_blocks != nullptr) {
    r.out_blocks[0] = r.table[0];
    r.out_blocks[r.len - 2] = r.table[c - 1];
    r.out_blocks[r.len - 1] = r.table[c];
  }
}

// Few rows (decode): one block per (query, head), so that a long row's
// candidates spread over 256 threads: `need` rounds of a block-wide arg-best
// over the candidates not yet taken.
__global__ void __launch_bounds__(kBlockThreads) SelectBlockKernel(SelectChunksParams p) {
  extern __shared__ float smem[];
  const int64_t row = blockIdx.x;
  const RowOut r = PrepareRow(p, row, threadIdx.x, blockDim.x);
  if (WriteUnscored(p, r, threadIdx.x, blockDim.x)) return;  // the same for the whole block
  const int c = r.c, need = p.slots - 3;
  float* key = smem;                                             // [p.c + 1]
  int32_t* chosen = reinterpret_cast<int32_t*>(key + p.c + 1);   // [need]
  unsigned char* taken = reinterpret_cast<unsigned char*>(chosen + need);  // [p.c + 1]
  __shared__ float red_key[kBlockThreads / 32];
  __shared__ int red_idx[kBlockThreads / 32];
  const float* scores = p.d_scores + row * (p.c + 1);
  for (int j = threadIdx.x; j <= c; j += blockDim.x) {
    key[j] = RankKey(scores[j]);
    taken[j] = 0;
  }
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int round = 0; round < need; ++round) {
    float bk = -INFINITY;
    int bj = -1;
    for (int j = 1 + threadIdx.x; j <= c - 2; j += blockDim.x) {
      if (!taken[j] && Better(key[j], j, bk, bj)) {
        bk = key[j];
        bj = j;
      }
    }
    WarpArgBest(bk, bj);
    if (lane == 0) {
      red_key[warp] = bk;
      red_idx[warp] = bj;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w2 = 1; w2 < kBlockThreads / 32; ++w2) {
        if (Better(red_key[w2], red_idx[w2], bk, bj)) {
          bk = red_key[w2];
          bj = red_idx[w2];
        }
      }
      chosen[round] = bj;
      taken[bj] = 1;
    }
    __syncthreads();
  }
  WriteScored(p, r, chosen, need, threadIdx.x, blockDim.x);
}

}  // namespace

int32_t SlotListLength(SlotPolicy policy, int32_t slots, int32_t c) {
  return SlotListLengthOf(policy, slots, c);
}

CudaStatus SelectChunks(const SelectChunksParams& p) {
  if (p.c < 0 || p.n_queries < 0 || p.n_heads <= 0 ||
      (p.policy != SlotPolicy::kFull && p.slots < 3) ||
      (p.row_stride != 0 && p.row_stride < SlotListLength(p.policy, p.slots, p.c))) {
    return CudaStatus::kInvalidShape;
  }
  const int64_t rows = static_cast<int64_t>(p.n_queries) * p.n_heads;
  if (rows == 0) return CudaStatus::kOk;
  if (rows > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
  const bool several = p.rows.positions != nullptr;  // rows of several sequences
  if (p.chunk_size < 0 || (several && (p.chunk_size == 0 || p.rows.tables == nullptr)) ||
      (!several && p.chunk_size > 0 && (p.pos0 < 0 || (p.pos0 + p.n_queries - 1) / p.chunk_size > p.c))) {
    return CudaStatus::kInvalidShape;
  }
  const bool scored = p.policy == SlotPolicy::kLongHeads && p.c >= p.slots;
  cudaStream_t stream = AsStream(p.stream);
  if (rows <= kBlockKernelMaxRows) {
    const int64_t smem = scored ? 4 * (static_cast<int64_t>(p.c) + 1 + p.slots) + (p.c + 1) : 0;
    HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(reinterpret_cast<const void*>(&SelectBlockKernel), smem));
    SelectBlockKernel<<<static_cast<unsigned>(rows), kBlockThreads, smem, stream>>>(p);
    return LaunchStatus();
  }
  if (p.slots - 3 <= kThreadMaxNeed && p.c - 2 <= kThreadMaxCandidates) {
    SelectThreadKernel<<<static_cast<unsigned>((rows + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
        p, rows);
    return LaunchStatus();
  }
  const int64_t smem = scored ? int64_t{4} * kWarps * (p.slots - 3) : 0;
  HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(reinterpret_cast<const void*>(&SelectWarpKernel), smem));
  SelectWarpKernel<<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kWarps * 32, smem, stream>>>(p, rows);
  return LaunchStatus();
}

}  // namespace hr::cuda
