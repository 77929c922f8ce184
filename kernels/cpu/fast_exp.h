// exp(x) for float, written so `#pragma omp simd` loops vectorise it (no
// branches, no calls). Cody-Waite range reduction x = n·ln2 + r, a degree-6
// polynomial for e^r on |r| <= ln2/2 and 2^n through the exponent bits.
// Relative error below 2e-7 on [-87, 88]; inputs are clamped to that range
// (so exp(-inf) gives ~1e-38 rather than 0, harmless in a softmax).
#ifndef HEADROOM_KERNELS_CPU_FAST_EXP_H_
#define HEADROOM_KERNELS_CPU_FAST_EXP_H_

#include <cstdint>
#include <cstring>

namespace hr::cpu {

#pragma omp declare simd
inline float FastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round to nearest by adding and removing 1.5·2^23 (no call, vectorises
  // on every SSE level; exact for |x·log2 e| < 2^22).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_FAST_EXP_H_
