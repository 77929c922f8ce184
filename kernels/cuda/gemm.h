// Matrix products through cuBLAS.
#ifndef HEADROOM_KERNELS_CUDA_GEMM_H_
#define HEADROOM_KERNELS_CUDA_GEMM_H_

#include <cstdint>

#include "kernels/cuda/common.h"

namespace hr::cuda {

// c[m, n] = a[m, k] · b[n, k]ᵀ (+ beta · c[m, n]), row-major (a: tokens, b: an nn.Linear weight;
// the layout of cpu::MatMulWt). Accumulation is always FP32:
//   ab_dtype kF32: FP32 products (no TF32), c kF32 (the exactness path);
//   ab_dtype kBF16 / kF16: 16-bit inputs, c kF32 or the input dtype.
// Uses one cuBLAS handle per host thread, created on first use.
struct GemmParams {
  const void* d_a = nullptr;  // [m, k] in ab_dtype
  const void* d_b = nullptr;  // [n, k] in ab_dtype
  void* d_c = nullptr;        // [m, n] in c_dtype
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  DType ab_dtype = DType::kF32;
  DType c_dtype = DType::kF32;
  // 0: c is overwritten; 1: the product is added to c (a residual stream).
  float beta = 0.0f;
  Stream stream = nullptr;
};
CudaStatus Gemm(const GemmParams& p);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_GEMM_H_
