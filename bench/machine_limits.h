// Physical limits of this machine, measured in the same run as a benchmark so
// results can be reported as a fraction of what the hardware allows.
#ifndef HEADROOM_BENCH_MACHINE_LIMITS_H_
#define HEADROOM_BENCH_MACHINE_LIMITS_H_

#include <string>

namespace hr::bench {

// Read bandwidth in bytes/s: all threads summing a buffer of `bytes` (far
// larger than the caches); best of `repeats`.
double MeasureReadBandwidth(size_t bytes, int repeats);

// SGEMM rate in FLOP/s through the same BLAS the model uses: [m,k]·[n,k]ᵀ;
// best of `repeats`.
double MeasureGemmFlops(int m, int n, int k, int repeats);

// "model name : ..." from /proc/cpuinfo, and core count.
std::string CpuDescription();

double NowSeconds();

}  // namespace hr::bench

#endif  // HEADROOM_BENCH_MACHINE_LIMITS_H_
