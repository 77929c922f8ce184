#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include "kernels/cpu/gemm_small_m.h"

namespace hr::cpu {

void MatMulWt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y) {
  MatMulWt(x, m, k, w, n, y, n);
}

void MatMulWt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
              int64_t ldy) {
  if (m > 1 && m <= kSmallMMax) {
    MatMulWtSmallM(x, m, k, w, n, y, ldy);
    return;
  }
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.0f, w,
                static_cast<int>(k), x, 1, 0.0f, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x, static_cast<int>(k), w, static_cast<int>(k), 0.0f, y,
              static_cast<int>(ldy));
}

void MatMulWtReference(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) acc += static_cast<double>(x[i * k + p]) * w[j * k + p];
      y[i * n + j] = static_cast<float>(acc);
    }
  }
}

void SetBlasThreads(int n) { openblas_set_num_threads(n); }
int BlasThreads() { return openblas_get_num_threads(); }

}  // namespace hr::cpu
