#include <cuda_runtime.h>

#include <cstdio>

#include "kernels/cuda/cuda_kernels.h"

namespace hr::cuda {

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

}  // namespace hr::cuda
