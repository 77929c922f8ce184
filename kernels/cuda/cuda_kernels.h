// CUDA backend entry points (host API; no CUDA headers here). Every function
// returns a CudaStatus instead of throwing or aborting; a machine without a
// GPU gets kNoDevice from the functions that check, and the tests skip.
//
//   common.h     status codes, dtypes, device queries
//   elementwise.h  embedding gather, RMSNorm, SwiGLU
//   rope.h       RoPE tables and rotation (absolute or local positions)
//   paged_kv.h   device KV blocks: append with local RoPE, chunk summaries
//   selection.h  chunk scores, per-head top-k chunk lists
//   attention.h  split-K decode and tiled prefill attention over slot lists
//   gemm.h       cuBLAS matrix products (FP32; BF16/FP16 with FP32 accumulation)
#ifndef HEADROOM_KERNELS_CUDA_CUDA_KERNELS_H_
#define HEADROOM_KERNELS_CUDA_CUDA_KERNELS_H_

#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/paged_kv.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/selection.h"

namespace hr::cuda {

// Host-side convenience for tests: copies in, runs RmsNorm, copies out.
CudaStatus RmsNormHost(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_CUDA_KERNELS_H_
