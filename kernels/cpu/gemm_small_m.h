// Matrix products with few rows (decode batches): y[m, n] = x[m, k] · w[n, k]ᵀ
// for 1 <= m <= 16.
//
// OpenBLAS sgemm is tuned for large m and loses most of the memory bandwidth
// when m is a handful of tokens (measured in bench/results/). This kernel reads
// each weight row once, computes its dot products with all m rows of x while
// the row is in L1, and splits the rows of w across threads. The same source
// is compiled for AVX-512, AVX2+FMA and baseline x86-64 and chosen at run time
// (__builtin_cpu_supports), so the binary stays portable.
#ifndef HEADROOM_KERNELS_CPU_GEMM_SMALL_M_H_
#define HEADROOM_KERNELS_CPU_GEMM_SMALL_M_H_

#include <cstdint>

namespace hr::cpu {

inline constexpr int64_t kSmallMMax = 16;

// REQUIRES: 1 <= m <= kSmallMMax; no aliasing.
void MatMulWtSmallM(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y);

// The same with row i of y at y + i·ldy (ldy >= n): products written straight
// into a wider matrix.
void MatMulWtSmallM(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                    int64_t ldy);

// Which variant MatMulWtSmallM runs on this CPU: "avx512", "avx2" or "generic".
const char* SmallMVariant();

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_GEMM_SMALL_M_H_
