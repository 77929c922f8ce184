#include "server/model/seqpe/gpt2_layers.h"

#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/layer_norm.h"

namespace hr {

void ApplyLinearRows(const Linear& l, int64_t first, int64_t n, const float* x, int64_t rows,
                     float* y) {
  cpu::MatMulWt(x, rows, l.in(), l.w.data + first * l.in(), n, y);
  if (l.b.data == nullptr) return;
  const float* b = l.b.data + first;
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * n;
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) yr[c] += b[c];
  }
}

void ApplyLinear(const Linear& l, const float* x, int64_t rows, float* y) {
  ApplyLinearRows(l, 0, l.out(), x, rows, y);
}

void ApplyLayerNorm(const LayerNormWeights& ln, float eps, const float* x, int64_t rows,
                    int64_t dim, float* y) {
  cpu::LayerNorm(x, ln.w.data, ln.b.data, rows, dim, eps, y);
}

void AddMlp(const Gpt2BlockWeights& w, float eps, float* x, int64_t rows, int64_t dim, float* xn,
            float* hidden, float* out) {
  ApplyLayerNorm(w.ln2, eps, x, rows, dim, xn);
  ApplyLinear(w.ffn_up, xn, rows, hidden);
  cpu::GeluTanh(hidden, rows * w.ffn_up.out());
  ApplyLinear(w.ffn_down, hidden, rows, out);
  for (int64_t i = 0; i < rows * dim; ++i) x[i] += out[i];
}

}  // namespace hr
