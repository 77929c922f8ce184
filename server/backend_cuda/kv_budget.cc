#include "server/backend_cuda/kv_budget.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace hr {
namespace {

std::string MiB(int64_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); }

}  // namespace

absl::StatusOr<int64_t> AutoKvBudget(const cuda::DeviceMemory& memory, double fraction,
                                     int64_t working_bytes, int64_t block_bytes) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("GPU memory fraction ", fraction, " is outside (0, 1]"));
  }
  if (block_bytes <= 0) return absl::InvalidArgumentError("KV block size must be > 0");
  const int64_t allowed = static_cast<int64_t>(std::floor(fraction * static_cast<double>(memory.total_bytes)));
  const int64_t in_use = memory.total_bytes - memory.free_bytes;
  const int64_t left = allowed - in_use - working_bytes;
  if (left < block_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no room for a KV cache on the GPU: ", fraction, " of its ", MiB(memory.total_bytes), " is ",
        MiB(allowed), ", of which ", MiB(in_use), " is in use (weights, other processes) and ",
        MiB(working_bytes), " is kept for the forward pass's working memory; a KV block takes ",
        block_bytes, " bytes. Raise --gpu_memory_fraction, lower --step_tokens / --prefill_step_tokens / "
        "--max_input_tokens, or set --kv_cache_mb"));
  }
  return std::min(left / block_bytes, kAutoKvMaxBlocks) * block_bytes;
}

}  // namespace hr
