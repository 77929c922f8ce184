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

constexpr int kWarps = 8;  // rows (query, head) per block: one warp each

__device__ __forceinline__ float RankKey(float s) { return isnan(s) ? -INFINITY : s; }

// Whether candidate a ranks before b (b < 0: no candidate yet; a < 0 never does).
__device__ __forceinline__ bool Better(float ka, int a, float kb, int b) {
  if (a < 0) return false;
  return b < 0 || ka > kb || (ka == kb && a < b);
}

// One warp per (query, head). (higher key, then lower index) is a strict
// total order, so round r's pick is the best candidate ranked after round
// r-1's: each round is one pass of the lanes over their candidates and a
// warp arg-best, with no "taken" marks and no block barriers.
__global__ void __launch_bounds__(kWarps * 32) SelectKernel(SelectChunksParams p, int64_t rows) {
  extern __shared__ int32_t chosen_all[];  // [kWarps][slots - 3]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kWarps) + warp;
  if (row >= rows) return;
  const int c = p.chunk_size > 0 ? static_cast<int>((p.pos0 + row / p.n_heads) / p.chunk_size) : p.c;
  const int len = SlotListLengthOf(p.policy, p.slots, c);
  const int stride = p.row_stride > 0 ? p.row_stride : SlotListLengthOf(p.policy, p.slots, p.c);
  for (int s = lane; s < stride - len; s += 32) {  // right-aligned rows: -1 before the list
    p.d_chunks[row * stride + s] = -1;
    if (p.d_blocks != nullptr) p.d_blocks[row * stride + s] = -1;
  }
  int32_t* out = p.d_chunks + row * stride + (stride - len);
  int32_t* out_blocks = p.d_blocks == nullptr ? nullptr : p.d_blocks + row * stride + (stride - len);
  const int k = p.slots;
  if (!(p.policy == SlotPolicy::kLongHeads && c >= k)) {
    const bool window = p.policy == SlotPolicy::kWindow && c >= k;
    for (int s = lane; s < len; s += 32) {
      const int chunk = !window || s == 0 ? s : c - k + 1 + s;
      out[s] = chunk;
      if (out_blocks != nullptr) out_blocks[s] = p.d_block_table[chunk];
    }
    return;
  }
  const int need = k - 3;
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
    for (int o = 16; o > 0; o /= 2) {
      const float ok = __shfl_xor_sync(0xffffffffu, bk, o);
      const int oj = __shfl_xor_sync(0xffffffffu, bj, o);
      if (Better(ok, oj, bk, bj)) {
        bk = ok;
        bj = oj;
      }
    }
    if (lane == 0) chosen[round] = bj;
    prev_k = bk;
    prev_j = bj;
  }
  __syncwarp();
  // Ascending chunk order: each chosen chunk's place is the number of chosen
  // chunks below it.
  for (int t = lane; t < need; t += 32) {
    const int j = chosen[t];
    int place = 0;
    for (int o = 0; o < need; ++o) place += chosen[o] < j ? 1 : 0;
    out[1 + place] = j;
    if (out_blocks != nullptr) out_blocks[1 + place] = p.d_block_table[j];
  }
  if (lane == 0) {
    out[0] = 0;
    out[len - 2] = c - 1;
    out[len - 1] = c;
    if (out_blocks != nullptr) {
      out_blocks[0] = p.d_block_table[0];
      out_blocks[len - 2] = p.d_block_table[c - 1];
      out_blocks[len - 1] = p.d_block_table[c];
    }
  }
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
  if (p.chunk_size < 0 || (p.chunk_size > 0 && (p.pos0 < 0 || (p.pos0 + p.n_queries - 1) / p.chunk_size > p.c))) {
    return CudaStatus::kInvalidShape;
  }
  int64_t smem = 0;
  if (p.policy == SlotPolicy::kLongHeads && p.c >= p.slots) {
    smem = int64_t{4} * kWarps * (p.slots - 3);
    HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(reinterpret_cast<const void*>(&SelectKernel), smem));
  }
  SelectKernel<<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kWarps * 32, smem, AsStream(p.stream)>>>(
      p, rows);
  return LaunchStatus();
}

}  // namespace hr::cuda
