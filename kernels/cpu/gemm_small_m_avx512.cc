// The small-m product compiled for the "avx512" instruction set (see CMakeLists.txt).
#include <cstdint>
#include <cstring>

namespace hr::cpu::avx512 {
#include "kernels/cpu/gemm_small_m_impl.inc"
}  // namespace hr::cpu::avx512
