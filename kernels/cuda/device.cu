#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "kernels/cuda/common.cuh"

namespace hr::cuda {

const char* StatusName(CudaStatus s) {
  switch (s) {
    case CudaStatus::kOk:
      return "ok";
    case CudaStatus::kNoDevice:
      return "no_device";
    case CudaStatus::kInvalidShape:
      return "invalid_shape";
    case CudaStatus::kUnsupported:
      return "unsupported";
    case CudaStatus::kCudaError:
      return "cuda_error";
  }
  return "unknown";
}

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a machine without a driver
    return 0;
  }
  return n;
}

std::string DeviceName(int device) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) return "";
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%s, %zu GiB, sm_%d%d", prop.name,
                static_cast<size_t>(prop.totalGlobalMem >> 30), prop.major, prop.minor);
  return buf;
}

CudaStatus CurrentDeviceMemory(DeviceMemory* out) {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    cudaGetLastError();
    return CudaStatus::kCudaError;
  }
  out->total_bytes = static_cast<int64_t>(total_bytes);
  out->free_bytes = static_cast<int64_t>(free_bytes);
  return CudaStatus::kOk;
}

CudaStatus CheckContext(std::string* error) {
  cudaGetLastError();  // a failed launch's own error: not the context's
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    // A sticky error comes back on every call; any other is gone once read.
    cudaGetLastError();
    e = cudaDeviceSynchronize();
  }
  if (e == cudaSuccess) return CudaStatus::kOk;
  if (error != nullptr) *error = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  return CudaStatus::kCudaError;
}

namespace {
__global__ void TrapKernel() { __trap(); }
}  // namespace

CudaStatus LaunchTrap(Stream stream) {
  TrapKernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>();
  return LaunchStatus();
}

CudaStatus CurrentDeviceLimits(DeviceLimits* out) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return CudaStatus::kNoDevice;
  if (cudaDeviceGetAttribute(&out->sm_count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&out->max_smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&out->cc_major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    return CudaStatus::kCudaError;
  }
  return CudaStatus::kOk;
}

CudaStatus AllowSharedMemory(const void* kernel, int64_t bytes) {
  if (bytes <= 48 * 1024) return CudaStatus::kOk;
  DeviceLimits limits;
  HR_CUDA_RETURN_IF_ERROR(CurrentDeviceLimits(&limits));
  if (bytes > limits.max_smem_optin) return CudaStatus::kInvalidShape;
  return FromCuda(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace hr::cuda
