// The per-instruction-set builds of the small-m product (gemm_small_m_*.cc),
// for the run-time dispatcher in gemm_small_m.cc and for tests that check
// every variant the CPU supports. Call MatMulWtSmallM otherwise.
#ifndef HEADROOM_KERNELS_CPU_GEMM_SMALL_M_VARIANTS_H_
#define HEADROOM_KERNELS_CPU_GEMM_SMALL_M_VARIANTS_H_

#include <cstdint>

namespace hr::cpu {
namespace avx512 {
void MatMulWtSmallMImpl(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                        int64_t ldy);
}
namespace avx2 {
void MatMulWtSmallMImpl(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                        int64_t ldy);
}
namespace generic {
void MatMulWtSmallMImpl(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                        int64_t ldy);
}
}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_GEMM_SMALL_M_VARIANTS_H_
