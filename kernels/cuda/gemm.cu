#include <cublas_v2.h>

#include <climits>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"

namespace hr::cuda {
namespace {

cudaDataType_t CublasType(DType t) {
  switch (t) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

// One handle per (host thread, device): a cuBLAS handle belongs to the
// device current when it was created, and a thread may switch devices (a
// worker binds its own; tests and tools may use several). Destroyed at
// thread exit.
struct ThreadHandles {
  struct Entry {
    int device;
    cublasHandle_t handle;  // null: creation failed on that device
  };
  std::vector<Entry> entries;
  ~ThreadHandles() {
    for (const Entry& e : entries) {
      if (e.handle != nullptr) cublasDestroy(e.handle);
    }
  }
};

cublasHandle_t Handle() {
  thread_local ThreadHandles handles;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return nullptr;
  for (const ThreadHandles::Entry& e : handles.entries) {
    if (e.device == device) return e.handle;
  }
  // FP32 accumulation everywhere: no reduced-precision (16-bit) split-K
  // reductions, which the default math mode allows for 16-bit outputs.
  cublasHandle_t h = nullptr;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS ||
      cublasSetMathMode(h, static_cast<cublasMath_t>(
                               CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) !=
          CUBLAS_STATUS_SUCCESS) {
    if (h != nullptr) cublasDestroy(h);
    h = nullptr;
  }
  handles.entries.push_back({device, h});
  return h;
}

}  // namespace

CudaStatus Gemm(const GemmParams& p) {
  if (p.m < 0 || p.n < 0 || p.k < 0 || p.m > INT_MAX || p.n > INT_MAX || p.k > INT_MAX) {
    return CudaStatus::kInvalidShape;
  }
  if (p.ab_dtype == DType::kF32 ? p.c_dtype != DType::kF32
                                : (p.c_dtype != DType::kF32 && p.c_dtype != p.ab_dtype)) {
    return CudaStatus::kUnsupported;
  }
  if (p.m == 0 || p.n == 0) return CudaStatus::kOk;
  if (DeviceCount() == 0) return CudaStatus::kNoDevice;
  cublasHandle_t h = Handle();
  if (h == nullptr) return CudaStatus::kCudaError;
  if (cublasSetStream(h, AsStream(p.stream)) != CUBLAS_STATUS_SUCCESS) return CudaStatus::kCudaError;
  const float alpha = 1.0f, beta = p.beta;
  const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
  // Row-major c = a·bᵀ is column-major cᵀ = b·aᵀ: b (stored [n][k]) transposed
  // times a (stored [m][k]) as is.
  const cublasStatus_t s =
      cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, p.d_b, CublasType(p.ab_dtype), k,
                   p.d_a, CublasType(p.ab_dtype), k, &beta, p.d_c, CublasType(p.c_dtype), n,
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  return s == CUBLAS_STATUS_SUCCESS ? CudaStatus::kOk : CudaStatus::kCudaError;
}

}  // namespace hr::cuda
