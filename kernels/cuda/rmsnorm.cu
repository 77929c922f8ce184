#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace hr::cuda {
namespace {

// One block per row; blockDim.x threads reduce the sum of squares.
__global__ void RmsNormKernel(const float* x, const float* w, float* y, int64_t dim, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * dim;
  float* yr = y + row * dim;
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
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

}  // namespace

CudaStatus RmsNorm(const RmsNormParams& p) {
  if (p.rows <= 0 || p.dim <= 0) return CudaStatus::kInvalidShape;
  RmsNormKernel<<<static_cast<unsigned>(p.rows), 256, 0, AsStream(p.stream)>>>(p.d_x, p.d_weight,
                                                                                p.d_y, p.dim, p.eps);
  return LaunchStatus();
}

CudaStatus RmsNormHost(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y) {
  if (DeviceCount() == 0) return CudaStatus::kNoDevice;
  const size_t bytes = static_cast<size_t>(rows * dim) * sizeof(float);
  float *dx = nullptr, *dw = nullptr, *dy = nullptr;
  CudaStatus status = CudaStatus::kCudaError;
  if (cudaMalloc(&dx, bytes) == cudaSuccess && cudaMalloc(&dy, bytes) == cudaSuccess &&
      cudaMalloc(&dw, dim * sizeof(float)) == cudaSuccess &&
      cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice) == cudaSuccess &&
      cudaMemcpy(dw, weight, dim * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess) {
    status = RmsNorm({dx, dw, dy, rows, dim, eps});
    if (status == CudaStatus::kOk && cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
      status = CudaStatus::kCudaError;
    }
  }
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(dw);
  return status;
}

}  // namespace hr::cuda
