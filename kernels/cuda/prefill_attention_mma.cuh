// The tensor-core prefill attention kernel (internal to kernels/cuda; see
// attention.h for the contract and prefill_attention_mma.cu for the design).
#ifndef HEADROOM_KERNELS_CUDA_PREFILL_ATTENTION_MMA_CUH_
#define HEADROOM_KERNELS_CUDA_PREFILL_ATTENTION_MMA_CUH_

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"

namespace hr::cuda {

// BF16/F16 stores, head_dim 64 or 128, compute capability >= 8.
bool PrefillTensorCoresApply(const PagedKvLayer& kv, const DeviceLimits& limits);

// The splits the tensor-core kernel wants for p (before the workspace caps them).
int32_t PrefillTensorCoresSplits(const PrefillAttentionParams& p, const DeviceLimits& limits);

// The most splits PrefillTensorCoresSplits returns for n_heads heads of
// head_dim on this device, whatever the span: PrefillSplits gives at most
// ceil(slots / n_heads) (a launch has at least n_heads blocks, and its
// heaviest block's share of the work is at most 1).
int32_t PrefillTensorCoresSplitsBound(int32_t n_heads, int32_t head_dim, const DeviceLimits& limits);

// REQUIRES: p validated by PrefillAttention, n_queries > 0. kUnsupported
// where PrefillTensorCoresApply is false.
CudaStatus PrefillAttentionTensorCores(const PrefillAttentionParams& p, const DeviceLimits& limits);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_PREFILL_ATTENTION_MMA_CUH_
