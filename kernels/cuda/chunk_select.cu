// Per-(query, head) chunk lists (CPU reference: hr::SelectChunks).
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/selection.h"

namespace hr::cuda {
namespace {

constexpr int kSelectThreads = 256;

__device__ __forceinline__ float RankKey(float s) { return isnan(s) ? -INFINITY : s; }

// Whether candidate a ranks before b (b < 0: no candidate yet; a < 0 never does).
__device__ __forceinline__ bool Better(float ka, int a, float kb, int b) {
  if (a < 0) return false;
  return b < 0 || ka > kb || (ka == kb && a < b);
}

// One block per (query, head).
__global__ void __launch_bounds__(kSelectThreads) SelectKernel(SelectChunksParams p, int32_t len) {
  extern __shared__ float smem[];
  const int64_t row = blockIdx.x;
  int32_t* out = p.d_chunks + row * len;
  int32_t* out_blocks = p.d_blocks == nullptr ? nullptr : p.d_blocks + row * len;
  const int c = p.c, k = p.slots;
  if (!(p.policy == SlotPolicy::kLongHeads && c >= k)) {
    const bool window = p.policy == SlotPolicy::kWindow && c >= k;
    for (int s = threadIdx.x; s < len; s += blockDim.x) {
      const int chunk = !window || s == 0 ? s : c - k + 1 + s;
      out[s] = chunk;
      if (out_blocks != nullptr) out_blocks[s] = p.d_block_table[chunk];
    }
    return;
  }
  const int need = k - 3;
  float* key = smem;                                           // [c + 1]
  int32_t* chosen = reinterpret_cast<int32_t*>(key + c + 1);   // [need]
  unsigned char* taken = reinterpret_cast<unsigned char*>(chosen + need);  // [c + 1]
  __shared__ float red_key[kSelectThreads / 32];
  __shared__ int red_idx[kSelectThreads / 32];
  const float* scores = p.d_scores + row * (c + 1);
  for (int j = threadIdx.x; j <= c; j += blockDim.x) {
    key[j] = RankKey(scores[j]);
    taken[j] = 0;
  }
  __syncthreads();
  // `need` rounds of a block-wide arg-best over the candidates not yet taken:
  // exactly the need best under (higher key, then lower index).
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
    for (int o = 16; o > 0; o /= 2) {
      const float ok = __shfl_xor_sync(0xffffffffu, bk, o);
      const int oj = __shfl_xor_sync(0xffffffffu, bj, o);
      if (Better(ok, oj, bk, bj)) {
        bk = ok;
        bj = oj;
      }
    }
    if (lane == 0) {
      red_key[warp] = bk;
      red_idx[warp] = bj;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w2 = 1; w2 < kSelectThreads / 32; ++w2) {
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
  // Ascending chunk order: each chosen chunk's place is the number of chosen
  // chunks below it.
  for (int t = threadIdx.x; t < need; t += blockDim.x) {
    const int j = chosen[t];
    int place = 0;
    for (int o = 0; o < need; ++o) place += chosen[o] < j ? 1 : 0;
    out[1 + place] = j;
    if (out_blocks != nullptr) out_blocks[1 + place] = p.d_block_table[j];
  }
  if (threadIdx.x == 0) {
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
  if (policy == SlotPolicy::kFull || c < slots) return c + 1;
  return slots;
}

CudaStatus SelectChunks(const SelectChunksParams& p) {
  if (p.c < 0 || p.n_queries < 0 || p.n_heads <= 0 ||
      (p.policy != SlotPolicy::kFull && p.slots < 3)) {
    return CudaStatus::kInvalidShape;
  }
  const int64_t rows = static_cast<int64_t>(p.n_queries) * p.n_heads;
  if (rows == 0) return CudaStatus::kOk;
  if (rows > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
  const int32_t len = SlotListLength(p.policy, p.slots, p.c);
  int64_t smem = 0;
  if (p.policy == SlotPolicy::kLongHeads && p.c >= p.slots) {
    smem = 4 * (static_cast<int64_t>(p.c) + 1 + p.slots) + (p.c + 1);
    HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(reinterpret_cast<const void*>(&SelectKernel), smem));
  }
  SelectKernel<<<static_cast<unsigned>(rows), kSelectThreads, smem, AsStream(p.stream)>>>(p, len);
  return LaunchStatus();
}

}  // namespace hr::cuda
