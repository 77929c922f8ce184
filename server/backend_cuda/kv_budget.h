// Sizing a CUDA worker's KV cache from its device's memory (the server's
// --kv_cache_mb 0, its default on CUDA), as vLLM's gpu_memory_utilization
// and TGI's automatic token budget do: a long document should not need a
// hand-tuned flag before it fits on an 80 GB card.
//
//   budget = fraction · total − in use now − working
//
// where "in use now" is everything the device holds when the cache is made
// (this process's weights, CUDA context and the forward pass's scratch, which
// CudaLlamaModel::Create reserves at its bound first; other processes), and
// "working" what is still to come: a margin for cuBLAS's workspace, RoPE
// tables and sequences' block tables (CudaLlamaModel::kWorkingMarginBytes).
// Per-sequence query buffers of the `longheads` summary kind (CudaSequence:
// n_layers · n_heads · chunk_size · head_dim floats each, 128 MiB for an
// 8B model) are not counted: they come out of the (1 − fraction) left over,
// and a sequence that finds no room for them waits at admission for running
// ones to end (RESOURCE_EXHAUSTED when none runs).
//
// Pure arithmetic; thread-safe.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_KV_BUDGET_H_
#define HEADROOM_SERVER_BACKEND_CUDA_KV_BUDGET_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/cuda/common.h"

namespace hr {

// Blocks an automatic budget holds at most (a tiny model on a large card
// would otherwise get billions, and host bookkeeping per block).
inline constexpr int64_t kAutoKvMaxBlocks = int64_t{1} << 20;

// The budget in bytes, a whole number of `block_bytes` blocks, at most
// kAutoKvMaxBlocks of them.
// INVALID_ARGUMENT for a fraction outside (0, 1] or a block size <= 0;
// RESOURCE_EXHAUSTED, naming the numbers, when not even one block is left.
absl::StatusOr<int64_t> AutoKvBudget(const cuda::DeviceMemory& memory, double fraction,
                                     int64_t working_bytes, int64_t block_bytes);

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_KV_BUDGET_H_
