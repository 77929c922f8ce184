#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.h"

namespace hr::cuda {
namespace {

__global__ void SwiGluKernel(float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

}  // namespace

CudaStatus SwiGlu(const SwiGluParams& p) {
  if (p.n < 0) return CudaStatus::kInvalidShape;
  if (p.n == 0) return CudaStatus::kOk;
  const int64_t blocks = std::min<int64_t>((p.n + 255) / 256, 65535);
  SwiGluKernel<<<static_cast<unsigned>(blocks), 256, 0, AsStream(p.stream)>>>(p.d_gate, p.d_up, p.n);
  return LaunchStatus();
}

}  // namespace hr::cuda
