#include "bench/cuda_limits.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace hr::bench {
namespace {

__global__ void ReadKernel(const uint4* p, size_t n, unsigned* sink) {
  uint32_t acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = __ldg(p + i), b = __ldg(p + i + stride), c = __ldg(p + i + 2 * stride),
                d = __ldg(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    const uint4 a = __ldg(p + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x12345678u) atomicAdd(sink, 1u);  // keeps the loads alive
}

__device__ __forceinline__ uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <typename T>
__global__ void FillKernel(T* d, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(Mix(seed ^ (static_cast<uint64_t>(i) * 0x2545f4914f6cdd1dull)) >> 40) *
                    (1.0f / 16777216.0f);
    const float x = (2.0f * u - 1.0f) * scale;
    if constexpr (sizeof(T) == 4) {
      d[i] = x;
    } else if constexpr (std::is_same_v<T, __half>) {
      d[i] = __float2half_rn(x);
    } else {
      d[i] = __float2bfloat16_rn(x);
    }
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

double CudaCopyBandwidth(size_t bytes, int repeats) {
  void *a = nullptr, *b = nullptr;
  cudaEvent_t e0, e1;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaFree(a);
    return 0.0;
  }
  cudaMemset(a, 1, bytes);
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> rates;
  for (int r = -1; r < repeats; ++r) {  // r = -1 warms up
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    if (r >= 0 && ms > 0.0f) rates.push_back(2.0 * bytes / (ms * 1e-3));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return cudaGetLastError() == cudaSuccess ? Median(rates) : 0.0;
}

double CudaReadBandwidth(size_t bytes, int repeats) {
  void* a = nullptr;
  unsigned* sink = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&sink, sizeof(unsigned)) != cudaSuccess) {
    cudaFree(a);
    return 0.0;
  }
  CudaFillRandom(a, static_cast<int64_t>(bytes / 4), cuda::DType::kF32, 7, 1.0f);
  int dev = 0, sms = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> rates;
  for (int r = -1; r < repeats; ++r) {
    cudaEventRecord(e0);
    ReadKernel<<<sms * 8, 256>>>(static_cast<const uint4*>(a), bytes / 16, sink);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, e0, e1);
    if (r >= 0 && ms > 0.0f) rates.push_back(static_cast<double>(bytes) / (ms * 1e-3));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(sink);
  return cudaGetLastError() == cudaSuccess ? Median(rates) : 0.0;
}

bool CudaFillRandom(void* d, int64_t n, cuda::DType dtype, uint64_t seed, float scale) {
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 65535));
  if (n <= 0) return true;
  switch (dtype) {
    case cuda::DType::kF32:
      FillKernel<float><<<blocks, 256>>>(static_cast<float*>(d), n, seed, scale);
      break;
    case cuda::DType::kF16:
      FillKernel<__half><<<blocks, 256>>>(static_cast<__half*>(d), n, seed, scale);
      break;
    case cuda::DType::kBF16:
      FillKernel<__nv_bfloat16><<<blocks, 256>>>(static_cast<__nv_bfloat16*>(d), n, seed, scale);
      break;
  }
  return cudaGetLastError() == cudaSuccess;
}

}  // namespace hr::bench
