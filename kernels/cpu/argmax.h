// The index of the largest of a row of floats (greedy sampling's argmax
// over a vocabulary's logits).
#ifndef HEADROOM_KERNELS_CPU_ARGMAX_H_
#define HEADROOM_KERNELS_CPU_ARGMAX_H_

#include <cstdint>

namespace hr::cpu {

// What std::max_element(x, x + n) - x returns: the first maximum under
// operator<, so a NaN is never chosen unless x[0] is NaN (then 0); 0 for
// n <= 0. Sixteen running maxima in four vectors, then the first element
// equal to their maximum, found sixteen at a time. std::max_element's
// dependent compare per element took 90 us for a 32000-token vocabulary
// here (5.8 ms for a 64-sequence step's greedy tokens); this 7 us
// (kernels_bench BM_ArgMax, bench/results/forward_cpu.md).
int64_t ArgMax(const float* x, int64_t n);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_ARGMAX_H_
