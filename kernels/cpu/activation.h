// Element-wise activations and softmax.
#ifndef HEADROOM_KERNELS_CPU_ACTIVATION_H_
#define HEADROOM_KERNELS_CPU_ACTIVATION_H_

#include <cstdint>

namespace hr::cpu {

// gate[i] = silu(gate[i]) · up[i]   (SwiGLU), n elements.
void SiluMul(float* gate, const float* up, int64_t n);

// In-place numerically stable softmax over n values.
void Softmax(float* x, int64_t n);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_ACTIVATION_H_
