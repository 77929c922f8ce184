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
// chunk's keys pass through shared memory (in T) kSliceBytes at a time, copied
// with 16-byte loads all in flight at once (8 per thread); then thread c < D
// adds channel c over the slice in token order (the CPU's order, so the mean
// is bit-identical), its shared loads independent of the sums. One thread per
// channel loading its own column waited for 16 batches of loads in turn:
// ~28 us per launch on an H200 at any chunk count
// (bench/results/cuda_h200_prefill.md).
constexpr int kBoundMeanThreads = 256;
constexpr int kSliceBytes = 32 * 1024;

template <typename T, int D>
__global__ void __launch_bounds__(kBoundMeanThreads)
    BoundMeanKernel(PagedKvLayer kv, const int32_t* blocks, float* bound, float* mean) {
  constexpr int kSliceKeys = kSliceBytes / (D * sizeof(T));
  constexpr int kVecs = kSliceBytes / 16 / kBoundMeanThreads;  // 16-byte loads per thread and slice
  static_assert(D * sizeof(T) % 16 == 0 && kSliceKeys > 0, "16-byte rows");
  __shared__ __align__(16) T slice[kSliceKeys * D];
  const int ci = blockIdx.x, g = blockIdx.y;
  const int w = kv.chunk_size;
  const int64_t block = blocks[ci];
  const T* keys = static_cast<const T*>(kv.d_base) + block * kv.block_stride + static_cast<int64_t>(g) * w * D;
  const int c = threadIdx.x;  // the channel this thread sums (c < D)
  float mn = INFINITY, mx = -INFINITY, sum = 0.0f;
  for (int s0 = 0; s0 < w; s0 += kSliceKeys) {
    const int n_keys = min(kSliceKeys, w - s0);
    const int n16 = n_keys * D * static_cast<int>(sizeof(T)) / 16;
    const uint4* src = reinterpret_cast<const uint4*>(keys + static_cast<int64_t>(s0) * D);
    uint4 v[kVecs];
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int e = threadIdx.x + i * kBoundMeanThreads;
      if (e < n16) v[i] = src[e];
    }
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int e = threadIdx.x + i * kBoundMeanThreads;
      if (e < n16) reinterpret_cast<uint4*>(slice)[e] = v[i];
    }
    __syncthreads();
    if (c < D) {
#pragma unroll 16
      for (int k = 0; k < n_keys; ++k) {
        const float x = ToF32(slice[k * D + c]);
        mn = fminf(mn, x);
        mx = fmaxf(mx, x);
        sum += x;
      }
    }
    __syncthreads();
  }
  if (c < D) {
    float* b = bound + (block * kv.n_kv_heads + g) * 2 * D;
    b[c] = mn;
    b[D + c] = mx;
    mean[(block * kv.n_kv_heads + g) * D + c] = sum / static_cast<float>(w);
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

// Both launches of BuildChunkSummaries for one store dtype and head size.
template <typename T, int D>
CudaStatus LaunchSummaries(const ChunkSummaryParams& p, cudaStream_t stream) {
  const PagedKvLayer& kv = p.kv;
  BoundMeanKernel<T, D><<<dim3(p.n_chunks, kv.n_kv_heads), kBoundMeanThreads, 0, stream>>>(
      kv, p.d_blocks, p.out.d_bound, p.out.d_mean);
  HR_CUDA_RETURN_IF_ERROR(LaunchStatus());
  if (p.d_queries == nullptr) return CudaStatus::kOk;
  const int64_t smem = LongHeadsSmemBytes<D>(kv.chunk_size);
  HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(reinterpret_cast<const void*>(&LongHeadsKernel<T, D>), smem));
  LongHeadsKernel<T, D><<<dim3(p.n_chunks, p.n_heads), kSummaryThreads, smem, stream>>>(
      kv, p.d_blocks, p.d_queries, p.n_heads, p.adjacent_layout, p.out.d_longheads);
  return LaunchStatus();
}

}  // namespace

CudaStatus BuildChunkSummaries(const ChunkSummaryParams& p) {
  const PagedKvLayer& kv = p.kv;
  if (kv.chunk_size <= 0 || kv.n_kv_heads <= 0 || kv.head_dim <= 0 || p.n_chunks < 0 ||
      kv.head_dim > kBoundMeanThreads || kv.n_kv_heads > 65535 ||
      (p.d_queries != nullptr && (p.n_heads <= 0 || p.n_heads % kv.n_kv_heads != 0 || p.n_heads > 65535))) {
    return CudaStatus::kInvalidShape;
  }
  if (p.n_chunks == 0) return CudaStatus::kOk;
  HR_DISPATCH_DTYPE(kv.dtype, {
    HR_DISPATCH_HEAD_DIM(kv.head_dim, { return LaunchSummaries<T, D>(p, AsStream(p.stream)); })
  })
}

}  // namespace hr::cuda
