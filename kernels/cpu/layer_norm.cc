#include "kernels/cpu/layer_norm.h"

#include <cmath>

namespace hr::cpu {

void LayerNorm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim,
               float eps, float* y) {
#pragma omp parallel for if (rows * dim > (int64_t{1} << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(dim);
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; ++i) {
      const double c = xr[i] - mean;
      ss += c * c;
    }
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
    const float m = static_cast<float>(mean);
    const float s = static_cast<float>(inv);
    for (int64_t i = 0; i < dim; ++i) {
      yr[i] = (xr[i] - m) * s * weight[i] + (bias != nullptr ? bias[i] : 0.0f);
    }
  }
}

}  // namespace hr::cpu
