#include "server/backend_cuda/model_kernels.h"

#include <algorithm>

#include "kernels/cuda/common.cuh"

namespace hr::backend_cuda {
namespace {

using cuda::CudaStatus;
using cuda::LaunchStatus;

unsigned GridFor(int64_t n, int threads) {
  return static_cast<unsigned>(std::min<int64_t>((n + threads - 1) / threads, 65535 * 8));
}

// As cuda::RmsNorm's kernel (same reduction), output in BF16.
__global__ void RmsNormBf16Kernel(const float* x, const float* w, __nv_bfloat16* y, int64_t dim, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * dim;
  __nv_bfloat16* yr = y + row * dim;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset /= 2) ss += __shfl_down_sync(0xffffffffu, ss, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    ss = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) ss += __shfl_down_sync(0xffffffffu, ss, offset);
    if (threadIdx.x == 0) partial[0] = ss;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = __float2bfloat16_rn(xr[i] * inv * w[i]);
}

// Rows over blockIdx.y (grid-stride), columns over x: no 64-bit division
// per element (a row-major index split into row and column cost more than
// the loads at 4096 x 2048).
template <typename T>
__global__ void SwiGluRowsKernel(const float* gu, int64_t rows, int ffn, T* out) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float* g = gu + r * 2 * ffn;
    const float* u = g + ffn;
    T* o = out + r * ffn;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < ffn; c += gridDim.x * blockDim.x) {
      const float x = g[c];
      o[c] = cuda::FromF32<T>(x / (1.0f + expf(-x)) * u[c]);
    }
  }
}

__global__ void ToBf16Kernel(const float* x, int64_t n, __nv_bfloat16* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = __float2bfloat16_rn(x[i]);
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

// One thread per (chunk of the span, head, candidate j).
__global__ void SumScoresKernel(float* scores, int64_t n, int64_t n_heads, int64_t n_chunks, int64_t pos0,
                                int64_t w, int64_t n_ranges) {
  const int64_t n_cand = n_chunks - 3;  // the last chunk's candidates (the most)
  const int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (item >= n_ranges * n_heads * n_cand) return;
  const int64_t r = item / (n_heads * n_cand);
  const int64_t h = item / n_cand % n_heads, j = 1 + item % n_cand;
  const int64_t c = pos0 / w + r;
  if (j > c - 2) return;
  const int64_t i0 = r == 0 ? 0 : c * w - pos0, i1 = min(n, (c + 1) * w - pos0);
  const int64_t row_stride = n_heads * n_chunks;
  float* first = scores + (i0 * n_heads + h) * n_chunks + j;
  float sum = *first;
#pragma unroll 8
  for (int64_t i = 1; i < i1 - i0; ++i) sum += first[i * row_stride];
  for (int64_t i = 0; i < i1 - i0; ++i) first[i * row_stride] = sum;
}

}  // namespace

CudaStatus RmsNormToBf16(const float* d_x, const float* d_weight, void* d_y, int64_t rows, int64_t dim,
                         float eps, cuda::Stream stream) {
  if (rows <= 0 || dim <= 0 || rows > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
  RmsNormBf16Kernel<<<static_cast<unsigned>(rows), 256, 0, cuda::AsStream(stream)>>>(
      d_x, d_weight, static_cast<__nv_bfloat16*>(d_y), dim, eps);
  return LaunchStatus();
}

CudaStatus SwiGluRows(const float* d_gu, int64_t rows, int64_t ffn, void* d_out, cuda::DType out_dtype,
                      cuda::Stream stream) {
  if (rows < 0 || ffn <= 0 || ffn > (int64_t{1} << 30)) return CudaStatus::kInvalidShape;
  if (rows == 0) return CudaStatus::kOk;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((ffn + 255) / 256, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
  const int f = static_cast<int>(ffn);
  switch (out_dtype) {
    case cuda::DType::kF32:
      SwiGluRowsKernel<<<grid, 256, 0, cuda::AsStream(stream)>>>(d_gu, rows, f, static_cast<float*>(d_out));
      return LaunchStatus();
    case cuda::DType::kBF16:
      SwiGluRowsKernel<<<grid, 256, 0, cuda::AsStream(stream)>>>(d_gu, rows, f, static_cast<__nv_bfloat16*>(d_out));
      return LaunchStatus();
    default:
      return CudaStatus::kUnsupported;
  }
}

CudaStatus ToBf16(const float* d_x, int64_t n, void* d_y, cuda::Stream stream) {
  if (n < 0) return CudaStatus::kInvalidShape;
  if (n == 0) return CudaStatus::kOk;
  ToBf16Kernel<<<GridFor(n, 256), 256, 0, cuda::AsStream(stream)>>>(d_x, n, static_cast<__nv_bfloat16*>(d_y));
  return LaunchStatus();
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
  const int64_t items = n_ranges * n_heads * (n_chunks - 3);
  SumScoresKernel<<<static_cast<unsigned>((items + 255) / 256), 256, 0, cuda::AsStream(stream)>>>(
      d_scores, n, n_heads, n_chunks, pos0, chunk_size, n_ranges);
  return LaunchStatus();
}

}  // namespace hr::backend_cuda
