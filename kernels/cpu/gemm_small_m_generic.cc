// The small-m product compiled for the "generic" instruction set (see CMakeLists.txt).
#include <cstdint>
#include <cstring>

namespace hr::cpu::generic {
#include "kernels/cpu/gemm_small_m_impl.inc"
}  // namespace hr::cpu::generic
