// LayerNorm as in GPT-2 / torch.nn.LayerNorm: per row,
//   y = (x - mean(x)) / sqrt(var(x) + eps) · weight + bias,
// with the biased (population) variance. Accumulates in double.
//
// Thread-safety: reentrant; multithreaded over rows (OpenMP) for large inputs.
#ifndef HEADROOM_KERNELS_CPU_LAYER_NORM_H_
#define HEADROOM_KERNELS_CPU_LAYER_NORM_H_

#include <cstdint>

namespace hr::cpu {

// x, y: [rows, dim] (may alias); weight, bias: [dim] (bias may be null: zero).
void LayerNorm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim,
               float eps, float* y);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_LAYER_NORM_H_
