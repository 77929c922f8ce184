// Thread count of the CPU kernels (OpenMP) and of BLAS, set together.
#ifndef HEADROOM_KERNELS_CPU_PARALLEL_H_
#define HEADROOM_KERNELS_CPU_PARALLEL_H_

namespace hr::cpu {

// Sets the number of threads used by kernels and BLAS (>= 1).
void SetNumThreads(int n);
int NumThreads();

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_PARALLEL_H_
