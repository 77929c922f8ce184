// CUDA backend entry points (host API; no CUDA headers here).
//
// Every function returns a CudaStatus instead of throwing or aborting; a
// machine without a GPU gets kNoDevice. Pointers named d_* are device memory.
#ifndef HEADROOM_KERNELS_CUDA_CUDA_KERNELS_H_
#define HEADROOM_KERNELS_CUDA_CUDA_KERNELS_H_

#include <cstdint>
#include <string>

namespace hr::cuda {

enum class CudaStatus { kOk, kNoDevice, kInvalidShape, kCudaError };

// Number of visible devices (0 when no driver or no GPU).
int DeviceCount();
// "NVIDIA H100 80GB HBM3, 79 GiB, sm_90" or an empty string.
std::string DeviceName(int device);

struct RmsNormParams {
  const float* d_x;       // [rows, dim]
  const float* d_weight;  // [dim]
  float* d_y;             // [rows, dim]
  int64_t rows;
  int64_t dim;
  float eps;
};
CudaStatus RmsNorm(const RmsNormParams& p);

// Host-side convenience for tests: copies in, runs RmsNorm, copies out.
CudaStatus RmsNormHost(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_CUDA_KERNELS_H_
