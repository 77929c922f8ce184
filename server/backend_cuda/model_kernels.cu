#include "server/backend_cuda/model_kernels.h"

#include <algorithm>
#include <climits>

#include "kernels/cuda/common.cuh"

namespace hr::backend_cuda {
namespace {

using cuda::CudaStatus;
using cuda::LaunchStatus;

// One warp per row, V consecutive floats per lane and load (V = 4: float4
// loads and 8-byte stores; 1 for a dim that is no multiple of 4). The sum of
// squares is reduced by xor shuffles only. With C > 0 (V = 4, dim <= 128·C)
// a lane keeps its C float4 of the row in registers, all loaded at once;
// otherwise the second pass reads the row again from L1. Rows of 768 floats
// were one 256-thread block each with two barriers, at ~half the memory rate;
// a warp per row looping over its loads took 6 us per launch at 512 rows
// (bench/results/cuda_h200_prefill.md).
template <int V, int C>
__global__ void RmsNormBf16Kernel(const float* x, const float* w, __nv_bfloat16* y, int64_t rows, int dim,
                                  float eps) {
  static_assert(C == 0 || V == 4, "rows cached as float4");
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const float* xr = x + row * dim;
  __nv_bfloat16* yr = y + row * dim;
  const auto store4 = [&](int i, const float4& v, float inv) {
    const float4 g = *reinterpret_cast<const float4*>(w + i);
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x * inv * g.x, v.y * inv * g.y);
    const __nv_bfloat162 hi = __floats2bfloat162_rn(v.z * inv * g.z, v.w * inv * g.w);
    uint2 packed;
    packed.x = *reinterpret_cast<const uint32_t*>(&lo);
    packed.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(yr + i) = packed;
  };
  const auto squares = [](const float4& v) { return v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w; };
  const auto inv_rms = [&](float ss) {  // the row's, from each lane's share of the sum of squares
    for (int offset = 16; offset > 0; offset /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, offset);
    return rsqrtf(ss / static_cast<float>(dim) + eps);
  };
  float ss = 0.0f;
  if constexpr (C > 0) {
    float4 xv[C];
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const int i = (lane + 32 * k) * 4;
      xv[k] = i < dim ? *reinterpret_cast<const float4*>(xr + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int k = 0; k < C; ++k) ss += squares(xv[k]);  // (zeros past the row's end)
    const float inv = inv_rms(ss);
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const int i = (lane + 32 * k) * 4;
      if (i < dim) store4(i, xv[k], inv);
    }
  } else {
    for (int i = lane * V; i < dim; i += 32 * V) {
      if constexpr (V == 4) {
        ss += squares(*reinterpret_cast<const float4*>(xr + i));
      } else {
        ss += xr[i] * xr[i];
      }
    }
    const float inv = inv_rms(ss);
    for (int i = lane * V; i < dim; i += 32 * V) {
      if constexpr (V == 4) {
        store4(i, *reinterpret_cast<const float4*>(xr + i), inv);
      } else {
        yr[i] = __float2bfloat16_rn(xr[i] * inv * w[i]);
      }
    }
  }
}

// Rows over blockIdx.y (grid-stride), V columns per thread over x: V = 16 /
// sizeof(T) (16-byte loads of gate and up and a 16-byte store) when ffn is a
// multiple of it, else 1. No 64-bit division per element. (Two BF16 columns
// per thread, 4-byte accesses, moved ~1.7 TB/s at 4096 x 2048.)
template <typename T, int V>
__global__ void SwiGluRowsKernel(const T* gu, int64_t rows, int ffn, T* out) {
  struct alignas(16) Vec {
    T e[V];
  };
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const T* g = gu + r * 2 * ffn;
    const T* u = g + ffn;
    T* o = out + r * ffn;
    for (int c = (blockIdx.x * blockDim.x + threadIdx.x) * V; c < ffn; c += gridDim.x * blockDim.x * V) {
      if constexpr (V > 1) {
        const Vec gv = *reinterpret_cast<const Vec*>(g + c);
        const Vec uv = *reinterpret_cast<const Vec*>(u + c);
        Vec ov;
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float x = cuda::ToF32(gv.e[e]);
          ov.e[e] = cuda::FromF32<T>(x / (1.0f + expf(-x)) * cuda::ToF32(uv.e[e]));
        }
        *reinterpret_cast<Vec*>(o + c) = ov;
      } else {
        const float x = cuda::ToF32(g[c]);
        o[c] = cuda::FromF32<T>(x / (1.0f + expf(-x)) * cuda::ToF32(u[c]));
      }
    }
  }
}

__global__ void GatherRowsKernel(const float* src, const int32_t* rows, int64_t dim, float* dst) {
  const int64_t i = blockIdx.x;
  const float* s = src + static_cast<int64_t>(rows[i]) * dim;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) dst[i * dim + c] = s[c];
}

// One block per (token, head).
__global__ void ScatterChunkQueriesKernel(const float* q, int64_t pos0, int64_t w, int64_t n_heads,
                                          int64_t d, float* dst) {
  const int64_t i = blockIdx.x, h = blockIdx.y;
  const int64_t u = (pos0 + i) % w;
  const float* src = q + (i * n_heads + h) * d;
  float* out = dst + (h * w + u) * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) out[c] = src[c];
}

// Block per (chunk of the span, head, kSumCands candidates j from
// 1 + kSumCands·blockIdx.z): the chunk's rows of those candidates go through
// shared memory kSumRows rows at a time (a warp per row, a lane per
// candidate: coalesced), lane j of warp 0 adds them up in query order (the
// order PagedSequence adds them, so FP32 sums match the CPU's bit for bit),
// and every row gets the sum. (A thread per (chunk, head, candidate) walking
// the rows from global memory took 64 us per layer at 4096 tokens on an
// H200: ~2500 threads, each with 256 dependent loads.)
constexpr int kSumCands = 32;
constexpr int kSumRows = 128;
constexpr int kSumThreads = 256;

__global__ void __launch_bounds__(kSumThreads) SumScoresKernel(float* scores, int64_t n, int64_t n_heads,
                                                               int64_t n_chunks, int64_t pos0, int64_t w) {
  __shared__ float rows_smem[kSumRows][kSumCands];
  const int64_t c = pos0 / w + blockIdx.x, h = blockIdx.y;
  const int64_t j0 = 1 + static_cast<int64_t>(blockIdx.z) * kSumCands;  // candidates 1 .. c-2
  if (j0 > c - 2) return;
  const int64_t i0 = blockIdx.x == 0 ? 0 : c * w - pos0, i1 = min(n, (c + 1) * w - pos0);
  const int64_t row_stride = n_heads * n_chunks;
  float* first = scores + (i0 * n_heads + h) * n_chunks + j0;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const bool mine = j0 + lane <= c - 2;
  float sum = 0.0f;  // lane's running sum, warp 0
  for (int64_t r0 = 0; r0 < i1 - i0; r0 += kSumRows) {
    const int rows = static_cast<int>(min(static_cast<int64_t>(kSumRows), i1 - i0 - r0));
    for (int r = warp; r < rows; r += kSumThreads / 32) {
      rows_smem[r][lane] = mine ? first[(r0 + r) * row_stride + lane] : 0.0f;
    }
    __syncthreads();
    if (warp == 0) {
      int r = 0;
      if (r0 == 0) sum = rows_smem[r++][lane];
      for (; r < rows; ++r) sum += rows_smem[r][lane];
    }
    __syncthreads();
  }
  if (warp == 0) rows_smem[0][lane] = sum;
  __syncthreads();
  sum = rows_smem[0][lane];
  if (!mine) return;
  for (int64_t r = warp; r < i1 - i0; r += kSumThreads / 32) first[r * row_stride + lane] = sum;
}

}  // namespace

CudaStatus RmsNormToBf16(const float* d_x, const float* d_weight, void* d_y, int64_t rows, int64_t dim,
                         float eps, cuda::Stream stream) {
  constexpr int64_t kRowsPerBlock = 4;  // one warp each; 128 blocks at 512 rows
  if (rows <= 0 || dim <= 0 || dim > (int64_t{1} << 30) || rows > (int64_t{1} << 31) - 1) {
    return CudaStatus::kInvalidShape;
  }
  const unsigned grid = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  auto* y = static_cast<__nv_bfloat16*>(d_y);
  const int d = static_cast<int>(dim);
  constexpr int kCached = 8;  // float4 per lane: rows of up to 1024 floats stay in registers
  cudaStream_t s = cuda::AsStream(stream);
  if (dim % 4 == 0 && dim <= 128 * kCached) {  // rows and the weight 16-byte aligned (256-byte allocations)
    RmsNormBf16Kernel<4, kCached><<<grid, 32 * kRowsPerBlock, 0, s>>>(d_x, d_weight, y, rows, d, eps);
  } else if (dim % 4 == 0) {
    RmsNormBf16Kernel<4, 0><<<grid, 32 * kRowsPerBlock, 0, s>>>(d_x, d_weight, y, rows, d, eps);
  } else {
    RmsNormBf16Kernel<1, 0><<<grid, 32 * kRowsPerBlock, 0, s>>>(d_x, d_weight, y, rows, d, eps);
  }
  return LaunchStatus();
}

namespace {

template <typename T>
CudaStatus LaunchSwiGlu(const T* gu, int64_t rows, int ffn, T* out, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const int v = ffn % kVec == 0 ? kVec : 1;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((ffn / v + 255) / 256, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
  if (v == kVec) {
    SwiGluRowsKernel<T, kVec><<<grid, 256, 0, stream>>>(gu, rows, ffn, out);
  } else {
    SwiGluRowsKernel<T, 1><<<grid, 256, 0, stream>>>(gu, rows, ffn, out);
  }
  return LaunchStatus();
}

}  // namespace

CudaStatus SwiGluRows(const void* d_gu, cuda::DType dtype, int64_t rows, int64_t ffn, void* d_out,
                      cuda::Stream stream) {
  if (rows < 0 || ffn <= 0 || ffn > (int64_t{1} << 30)) return CudaStatus::kInvalidShape;
  if (rows == 0) return CudaStatus::kOk;
  const int f = static_cast<int>(ffn);
  cudaStream_t s = cuda::AsStream(stream);
  switch (dtype) {
    case cuda::DType::kF32:
      return LaunchSwiGlu(static_cast<const float*>(d_gu), rows, f, static_cast<float*>(d_out), s);
    case cuda::DType::kBF16:
      return LaunchSwiGlu(static_cast<const __nv_bfloat16*>(d_gu), rows, f, static_cast<__nv_bfloat16*>(d_out), s);
    default:
      return CudaStatus::kUnsupported;
  }
}

CudaStatus GatherRows(const float* d_src, const int32_t* d_rows, int64_t n_rows, int64_t dim, float* d_dst,
                      cuda::Stream stream) {
  if (n_rows < 0 || dim <= 0 || n_rows > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
  if (n_rows == 0) return CudaStatus::kOk;
  GatherRowsKernel<<<static_cast<unsigned>(n_rows), 256, 0, cuda::AsStream(stream)>>>(d_src, d_rows, dim, d_dst);
  return LaunchStatus();
}

CudaStatus ScatterChunkQueries(const float* d_q_local, int64_t n, int64_t pos0, int64_t w, int64_t n_heads,
                               int64_t head_dim, float* d_dst, cuda::Stream stream) {
  if (n < 0 || w <= 0 || n_heads <= 0 || n_heads > 65535 || head_dim <= 0 ||
      (n > 0 && pos0 / w != (pos0 + n - 1) / w)) {
    return CudaStatus::kInvalidShape;
  }
  if (n == 0) return CudaStatus::kOk;
  ScatterChunkQueriesKernel<<<dim3(static_cast<unsigned>(n), static_cast<unsigned>(n_heads)),
                              static_cast<unsigned>(std::min<int64_t>(head_dim, 256)), 0,
                              cuda::AsStream(stream)>>>(d_q_local, pos0, w, n_heads, head_dim, d_dst);
  return LaunchStatus();
}

CudaStatus SumScoresOverQueries(float* d_scores, int64_t n, int64_t n_heads, int64_t n_chunks, int64_t pos0,
                                int64_t chunk_size, cuda::Stream stream) {
  if (n < 0 || n_heads <= 0 || pos0 < 0 || chunk_size <= 0 ||
      (n > 0 && (pos0 + n - 1) / chunk_size >= n_chunks)) {
    return CudaStatus::kInvalidShape;
  }
  if (n <= 1 || n_chunks <= 3) return CudaStatus::kOk;
  const int64_t n_ranges = (pos0 + n - 1) / chunk_size - pos0 / chunk_size + 1;
  const int64_t cand_blocks = (n_chunks - 3 + kSumCands - 1) / kSumCands;  // the last chunk's candidates (the most)
  if (n_ranges > INT_MAX || n_heads > 65535 || cand_blocks > 65535) return CudaStatus::kInvalidShape;
  SumScoresKernel<<<dim3(static_cast<unsigned>(n_ranges), static_cast<unsigned>(n_heads),
                         static_cast<unsigned>(cand_blocks)),
                    kSumThreads, 0, cuda::AsStream(stream)>>>(d_scores, n, n_heads, n_chunks, pos0, chunk_size);
  return LaunchStatus();
}

}  // namespace hr::backend_cuda
