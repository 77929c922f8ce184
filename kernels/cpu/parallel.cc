#include "kernels/cpu/parallel.h"

#include <omp.h>

#include <algorithm>

#include "kernels/cpu/gemm.h"

namespace hr::cpu {

void SetNumThreads(int n) {
  n = std::max(1, n);
  omp_set_num_threads(n);
  SetBlasThreads(n);
}

int NumThreads() { return omp_get_max_threads(); }

}  // namespace hr::cpu
