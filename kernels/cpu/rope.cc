#include "kernels/cpu/rope.h"

#include <cmath>

namespace hr::cpu {

Rope::Rope(int64_t head_dim, float theta, float linear_scale, RopeStyle style)
    : head_dim_(head_dim), style_(style), inv_freq_(head_dim / 2) {
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    inv_freq_[i] = std::pow(static_cast<double>(theta), -2.0 * i / head_dim) / linear_scale;
  }
}

void Rope::Apply(float* x, int64_t n_heads, double pos) const {
  const int64_t half = head_dim_ / 2;
  // Angles are shared by all heads of the token.
  float cs[256], sn[256];
  for (int64_t i0 = 0; i0 < half; i0 += 256) {
    const int64_t n = std::min<int64_t>(256, half - i0);
    for (int64_t i = 0; i < n; ++i) {
      const double a = pos * inv_freq_[i0 + i];
      cs[i] = static_cast<float>(std::cos(a));
      sn[i] = static_cast<float>(std::sin(a));
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = x + h * head_dim_;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t a = style_ == RopeStyle::kAdjacent ? 2 * (i0 + i) : i0 + i;
        const int64_t b = style_ == RopeStyle::kAdjacent ? a + 1 : a + half;
        const float x0 = xh[a], x1 = xh[b];
        xh[a] = x0 * cs[i] - x1 * sn[i];
        xh[b] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
}

void Rope::ApplyRows(float* x, int64_t rows, int64_t row_stride, int64_t n_heads,
                     double pos0) const {
#pragma omp parallel for if (rows * n_heads * head_dim_ > (int64_t{1} << 15))
  for (int64_t r = 0; r < rows; ++r) Apply(x + r * row_stride, n_heads, pos0 + r);
}

RopeStepTable::RopeStepTable(const Rope& rope, int64_t step) : rope_(rope), step_(step) {}

void RopeStepTable::Reserve(int64_t n_steps) {
  if (n_steps <= n_steps_) return;
  const int64_t half = rope_.head_dim() / 2;
  cos_.resize(n_steps * half);
  sin_.resize(n_steps * half);
  for (int64_t j = n_steps_; j < n_steps; ++j) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(j * step_) * rope_.inv_freq(i);
      cos_[j * half + i] = static_cast<float>(std::cos(a));
      sin_[j * half + i] = static_cast<float>(std::sin(a));
    }
  }
  n_steps_ = n_steps;
}

void RopeStepTable::Apply(float* x, int64_t j) const {
  const int64_t half = rope_.head_dim() / 2;
  const float* cs = cos_.data() + j * half;
  const float* sn = sin_.data() + j * half;
  const bool adjacent = rope_.style() == RopeStyle::kAdjacent;
  for (int64_t i = 0; i < half; ++i) {
    const int64_t a = adjacent ? 2 * i : i;
    const int64_t b = adjacent ? a + 1 : a + half;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * cs[i] - x1 * sn[i];
    x[b] = x0 * sn[i] + x1 * cs[i];
  }
}

}  // namespace hr::cpu
