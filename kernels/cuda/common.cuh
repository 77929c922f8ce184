// Internal helpers of the CUDA backend (included by .cu files only).
#ifndef HEADROOM_KERNELS_CUDA_COMMON_CUH_
#define HEADROOM_KERNELS_CUDA_COMMON_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common.h"

namespace hr::cuda {

inline cudaStream_t AsStream(Stream s) { return static_cast<cudaStream_t>(s); }

// log2(e): attention kernels keep scores in the log2 domain (exp2).
constexpr float kLog2e = 1.4426950408889634f;

// The status of the launch just queued.
inline CudaStatus LaunchStatus() {
  return cudaGetLastError() == cudaSuccess ? CudaStatus::kOk : CudaStatus::kCudaError;
}

inline CudaStatus FromCuda(cudaError_t e) {
  return e == cudaSuccess ? CudaStatus::kOk : CudaStatus::kCudaError;
}

#define HR_CUDA_RETURN_IF_ERROR(expr)                         \
  do {                                                        \
    const ::hr::cuda::CudaStatus hr_status_ = (expr);         \
    if (hr_status_ != ::hr::cuda::CudaStatus::kOk) return hr_status_; \
  } while (0)

// Element conversions (round to nearest even on the way in).
__device__ __forceinline__ float ToF32(float x) { return x; }
__device__ __forceinline__ float ToF32(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToF32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromF32(float x);
template <>
__device__ __forceinline__ float FromF32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half FromF32<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 FromF32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Where an attention kernel writes its rows ([rows][head_dim]): F32, or BF16
// (each FP32 result rounded once, to nearest even: what a BF16 GEMM after
// the attention reads, so no conversion pass runs between them).
struct OutRows {
  void* d = nullptr;
  bool bf16 = false;

  __device__ __forceinline__ void Store(int64_t i, float x) const {
    if (bf16) {
      static_cast<__nv_bfloat16*>(d)[i] = FromF32<__nv_bfloat16>(x);
    } else {
      static_cast<float*>(d)[i] = x;
    }
  }
  // Elements i and i + 1 (i even: 8-byte F32, 4-byte BF16 stores).
  __device__ __forceinline__ void Store2(int64_t i, float x, float y) const {
    if (bf16) {
      *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(d) + i) = __floats2bfloat162_rn(x, y);
    } else {
      *reinterpret_cast<float2*>(static_cast<float*>(d) + i) = make_float2(x, y);
    }
  }
};

// OutRows of an attention output of dtype t (kF32 or kBF16).
inline OutRows MakeOutRows(void* d, DType t) { return OutRows{d, t == DType::kBF16}; }

// A 16-byte vector of T, unpacked to floats.
template <typename T>
struct Vec16 {
  static constexpr int kElems = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void Unpack16(const uint4& raw, float* out);
template <>
__device__ __forceinline__ void Unpack16<float>(const uint4& raw, float* out) {
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}
template <>
__device__ __forceinline__ void Unpack16<__half>(const uint4& raw, float* out) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
template <>
__device__ __forceinline__ void Unpack16<__nv_bfloat16>(const uint4& raw, float* out) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// Dispatch: one switch per axis, an error default (design.md §8). The body
// sees the element type as `T` (or the head size as the constant `D`) and
// must return.
#define HR_DISPATCH_DTYPE(dtype, ...)                  \
  switch (dtype) {                                     \
    case ::hr::cuda::DType::kF32: {                    \
      using T = float;                                 \
      __VA_ARGS__                                      \
    }                                                  \
    case ::hr::cuda::DType::kF16: {                    \
      using T = __half;                                \
      __VA_ARGS__                                      \
    }                                                  \
    case ::hr::cuda::DType::kBF16: {                   \
      using T = __nv_bfloat16;                         \
      __VA_ARGS__                                      \
    }                                                  \
    default:                                           \
      return ::hr::cuda::CudaStatus::kUnsupported;     \
  }

#define HR_DISPATCH_HEAD_DIM(head_dim, ...)            \
  switch (head_dim) {                                  \
    case 8: {                                          \
      constexpr int D = 8;                             \
      __VA_ARGS__                                      \
    }                                                  \
    case 16: {                                         \
      constexpr int D = 16;                            \
      __VA_ARGS__                                      \
    }                                                  \
    case 32: {                                         \
      constexpr int D = 32;                            \
      __VA_ARGS__                                      \
    }                                                  \
    case 64: {                                         \
      constexpr int D = 64;                            \
      __VA_ARGS__                                      \
    }                                                  \
    case 128: {                                        \
      constexpr int D = 128;                           \
      __VA_ARGS__                                      \
    }                                                  \
    default:                                           \
      return ::hr::cuda::CudaStatus::kUnsupported;     \
  }

// Multiprocessor count and opt-in shared memory per block of the current device.
struct DeviceLimits {
  int sm_count = 0;
  int max_smem_optin = 0;
  int cc_major = 0;  // compute capability (8: Ampere, 9: Hopper)
};
CudaStatus CurrentDeviceLimits(DeviceLimits* out);

// Raises a kernel's dynamic shared-memory limit to `bytes` (no-op below 48 KB).
CudaStatus AllowSharedMemory(const void* kernel, int64_t bytes);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_COMMON_CUH_
