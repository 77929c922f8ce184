// RMSNorm: y = x / sqrt(mean(x²) + eps) · weight, per row.
#ifndef HEADROOM_KERNELS_CPU_NORM_H_
#define HEADROOM_KERNELS_CPU_NORM_H_

#include <cstdint>

namespace hr::cpu {

// x, y: [rows, dim] (may alias); weight: [dim].
void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_NORM_H_
