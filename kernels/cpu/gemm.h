// Matrix products through BLAS (OpenBLAS sgemm / sgemv).
//
// Thread-safety: reentrant; OpenBLAS uses its own thread pool (set its size
// with SetBlasThreads).
#ifndef HEADROOM_KERNELS_CPU_GEMM_H_
#define HEADROOM_KERNELS_CPU_GEMM_H_

#include <cstdint>

namespace hr::cpu {

// y[m, n] = x[m, k] · w[n, k]ᵀ   (x rows are tokens, w is an nn.Linear weight)
// REQUIRES: no aliasing between y and x or w.
void MatMulWt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y);

// The same with row i of y at y + i·ldy (ldy >= n).
void MatMulWt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
              int64_t ldy);

// The same, in plain loops (the reference for tests).
void MatMulWtReference(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y);

void SetBlasThreads(int n);
int BlasThreads();

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_GEMM_H_
