// GELU, tanh approximation (GPT-2's `gelu_new`, torch `gelu(approximate="tanh")`):
//   gelu(x) = 0.5 · x · (1 + tanh(sqrt(2/π) · (x + 0.044715 · x³))).
//
// Thread-safety: reentrant; multithreaded (OpenMP) for large inputs.
#ifndef HEADROOM_KERNELS_CPU_GELU_H_
#define HEADROOM_KERNELS_CPU_GELU_H_

#include <cstdint>

namespace hr::cpu {

// In place over n values.
void GeluTanh(float* x, int64_t n);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_GELU_H_
