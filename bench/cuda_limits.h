// Physical limits of the GPU, measured in the same run as bench/cuda_bench
// (design.md §7), and device-side random fills for synthetic KV caches.
#ifndef HEADROOM_BENCH_CUDA_LIMITS_H_
#define HEADROOM_BENCH_CUDA_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/common.h"

namespace hr::bench {

// cudaMemcpy device to device of `bytes`: (bytes read + bytes written) / s,
// median of `repeats`. 0 on failure.
double CudaCopyBandwidth(size_t bytes, int repeats);

// A kernel that only reads `bytes` (16-byte loads, several in flight, a grid
// filling the device): bytes read / s, median of `repeats`. 0 on failure.
double CudaReadBandwidth(size_t bytes, int repeats);

// Fills n elements of `dtype` at d with pseudo-random values, roughly uniform
// in [-scale, scale], a function of (seed, index). Never zeros everywhere.
bool CudaFillRandom(void* d, int64_t n, cuda::DType dtype, uint64_t seed, float scale);

}  // namespace hr::bench

#endif  // HEADROOM_BENCH_CUDA_LIMITS_H_
