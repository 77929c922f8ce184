// Chunk summaries on the device; the CPU reference is
// server/longctx/chunk_summary.cc (same formulas, same summation order over
// the chunk's tokens where it matters).
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/paged_kv.h"

namespace hr::cuda {
namespace {

// bound and mean of one (chunk, kv head), kBoundMeanThreads threads: the
// chunk's keys pass through shared memory (F32) kSliceKeys tokens at a time,
// loaded by every thread with all loads in flight; then thread c < head_dim
// adds channel c over the slice in token order (the CPU's order, so the mean
// is bit-identical). One thread per channel loading its own column waited for
// 16 batches of loads in turn: ~28 us per launch on an H200 at any chunk count
// (bench/results/cuda_h200_1f6bc7e.md).
constexpr int kBoundMeanThreads = 256;
constexpr int kSliceKeys = 64;

template <typename T>
__global__ void __launch_bounds__(kBoundMeanThreads)
    BoundMeanKernel(PagedKvLayer kv, const int32_t* blocks, float* bound, float* mean) {
  extern __shared__ float slice[];  // [kSliceKeys][head_dim]
  const int ci = blockIdx.x, g = blockIdx.y;
  const int d = kv.head_dim, w = kv.chunk_size;
  const int64_t block = blocks[ci];
  const T* keys = static_cast<const T*>(kv.d_base) + block * kv.block_stride +
                  static_cast<int64_t>(g) * w * d;
  const int c = threadIdx.x;  // the channel this thread sums (c < d)
  float mn = INFINITY, mx = -INFINITY, sum = 0.0f;
  for (int s0 = 0; s0 < w; s0 += kSliceKeys) {
    const int n = min(kSliceKeys, w - s0) * d;  // elements of this slice
    const T* src = keys + static_cast<int64_t>(s0) * d;
#pragma unroll 8
    for (int e = threadIdx.x; e < n; e += kBoundMeanThreads) slice[e] = ToF32(src[e]);
    __syncthreads();
    if (c < d) {
      for (int e = c; e < n; e += d) {
        const float x = slice[e];
        mn = fminf(mn, x);
        mx = fmaxf(mx, x);
        sum += x;
      }
    }
    __syncthreads();
  }
  if (c < d) {
    float* b = bound + (block * kv.n_kv_heads + g) * 2 * d;
    b[c] = mn;
    b[d + c] = mx;
    mean[(block * kv.n_kv_heads + g) * d + c] = sum / static_cast<float>(w);
  }
}

__device__ float BlockReduce(float x, bool is_max, float* red) {
  for (int o = 16; o > 0; o /= 2) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = is_max ? fmaxf(x, y) : x + y;
  }
  const int warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  __syncthreads();  // red may still be read from a previous call
  if (threadIdx.x % 32 == 0) red[warp] = x;
  __syncthreads();
  float r = red[0];
  for (int i = 1; i < n_warps; ++i) r = is_max ? fmaxf(r, red[i]) : r + red[i];
  return r;
}

constexpr int kSummaryThreads = 256;

// The official representation of one (chunk, query head):
//   P = softmax_rows(Q Kᵀ / √d), q̄ = Σ_s (mean_t P[t,s]) v_s,
//   r = Σ_s softmax_s(q̄·k_s / √d) k_s.
// Keys live in shared memory as F32 (rows padded by one word: no bank
// conflicts when each thread reads its own row). Thread t owns query t and
// walks the keys starting at its own index, so the column sums it adds meet
// few conflicts.
template <typename T, int D>
__global__ void __launch_bounds__(kSummaryThreads)
    LongHeadsKernel(PagedKvLayer kv, const int32_t* blocks, const float* queries, int n_heads,
                    bool adjacent, float* longheads) {
  extern __shared__ float smem[];
  const int w = kv.chunk_size;
  const int ci = blockIdx.x, h = blockIdx.y;
  const int g = h / (n_heads / kv.n_kv_heads);
  const int64_t block = blocks[ci];
  const T* keys = static_cast<const T*>(kv.d_base) + block * kv.block_stride +
                  static_cast<int64_t>(g) * w * D;
  const T* values = keys + kv.value_offset;
  float* ks = smem;                 // [w][D + 1]
  float* colsum = ks + w * (D + 1); // [w]
  float* qbar = colsum + w;         // [D]
  float* tmp = qbar + D;            // [D]
  float* probs = tmp + D;           // [w]
  float* red = probs + w;           // [32]
  for (int idx = threadIdx.x; idx < w * D; idx += blockDim.x) {
    ks[(idx / D) * (D + 1) + idx % D] = ToF32(keys[idx]);
  }
  for (int s = threadIdx.x; s < w; s += blockDim.x) colsum[s] = 0.0f;
  __syncthreads();
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  const float* q_all = queries + (static_cast<int64_t>(ci) * n_heads + h) * w * D;
  for (int t = threadIdx.x; t < w; t += blockDim.x) {
    float q[D];
#pragma unroll
    for (int c = 0; c < D; ++c) q[c] = q_all[static_cast<int64_t>(t) * D + c];
    float m = -INFINITY, l = 0.0f;
    for (int s2 = 0; s2 < w; ++s2) {
      const int s = s2 + t < w ? s2 + t : s2 + t - w;
      const float* kr = ks + s * (D + 1);
      float x = 0.0f;
#pragma unroll
      for (int c = 0; c < D; ++c) x += q[c] * kr[c];
      x *= scale;
      if (x > m) {
        l = l * expf(m - x) + 1.0f;
        m = x;
      } else {
        l += expf(x - m);
      }
    }
    const float inv = 1.0f / l;
    for (int s2 = 0; s2 < w; ++s2) {
      const int s = s2 + t < w ? s2 + t : s2 + t - w;
      const float* kr = ks + s * (D + 1);
      float x = 0.0f;
#pragma unroll
      for (int c = 0; c < D; ++c) x += q[c] * kr[c];
      atomicAdd(&colsum[s], expf(x * scale - m) * inv);
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < w; ++s) {
      acc += (colsum[s] / static_cast<float>(w)) * ToF32(values[static_cast<int64_t>(s) * D + c]);
    }
    tmp[c] = acc;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    // Into the keys' channel order for adjacent-pair (GGUF) layouts.
    qbar[c] = adjacent ? tmp[(c % 2 == 0 ? 0 : D / 2) + c / 2] : tmp[c];
  }
  __syncthreads();
  float local_max = -INFINITY;
  for (int s = threadIdx.x; s < w; s += blockDim.x) {
    const float* kr = ks + s * (D + 1);
    float x = 0.0f;
#pragma unroll
    for (int c = 0; c < D; ++c) x += qbar[c] * kr[c];
    probs[s] = x * scale;
    local_max = fmaxf(local_max, probs[s]);
  }
  const float mx = BlockReduce(local_max, true, red);
  float local_sum = 0.0f;
  for (int s = threadIdx.x; s < w; s += blockDim.x) {
    probs[s] = expf(probs[s] - mx);
    local_sum += probs[s];
  }
  const float inv_sum = 1.0f / BlockReduce(local_sum, false, red);
  __syncthreads();
  float* out = longheads + (block * n_heads + h) * D;
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < w; ++s) acc += (probs[s] * inv_sum) * ks[s * (D + 1) + c];
    out[c] = acc;
  }
}

template <int D>
int64_t LongHeadsSmemBytes(int w) {
  return static_cast<int64_t>(sizeof(float)) * (static_cast<int64_t>(w) * (D + 1) + 2 * w + 2 * D + 32);
}

}  // namespace

CudaStatus BuildChunkSummaries(const ChunkSummaryParams& p) {
  const PagedKvLayer& kv = p.kv;
  if (kv.chunk_size <= 0 || kv.n_kv_heads <= 0 || kv.head_dim <= 0 || p.n_chunks < 0 ||
      kv.head_dim > kBoundMeanThreads || kv.n_kv_heads > 65535 || (p.d_queries != nullptr &&
                                (p.n_heads <= 0 || p.n_heads % kv.n_kv_heads != 0 || p.n_heads > 65535))) {
    return CudaStatus::kInvalidShape;
  }
  if (p.n_chunks == 0) return CudaStatus::kOk;
  cudaStream_t stream = AsStream(p.stream);
  HR_DISPATCH_DTYPE(kv.dtype, {
    const int64_t slice_bytes = int64_t{kSliceKeys} * kv.head_dim * sizeof(float);
    HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(reinterpret_cast<const void*>(&BoundMeanKernel<T>), slice_bytes));
    BoundMeanKernel<T><<<dim3(p.n_chunks, kv.n_kv_heads), kBoundMeanThreads, slice_bytes, stream>>>(
        kv, p.d_blocks, p.out.d_bound, p.out.d_mean);
    HR_CUDA_RETURN_IF_ERROR(LaunchStatus());
    if (p.d_queries == nullptr) return CudaStatus::kOk;
    HR_DISPATCH_HEAD_DIM(kv.head_dim, {
      const int64_t smem = LongHeadsSmemBytes<D>(kv.chunk_size);
      HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(reinterpret_cast<const void*>(&LongHeadsKernel<T, D>), smem));
      LongHeadsKernel<T, D><<<dim3(p.n_chunks, p.n_heads), kSummaryThreads, smem, stream>>>(
          kv, p.d_blocks, p.d_queries, p.n_heads, p.adjacent_layout, p.out.d_longheads);
      return LaunchStatus();
    })
  })
}

}  // namespace hr::cuda
