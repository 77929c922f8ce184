// Chunk scores (CPU reference: hr::ScoreChunk and the GQA sum in
// server/longctx/paged_sequence.cc).
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/selection.h"

namespace hr::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per (query, head, candidate chunk); lanes over channels.
__global__ void ScoreKernel(ChunkScoreParams p, int64_t n_items) {
  const int64_t item = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  if (item >= n_items) return;
  const int lane = threadIdx.x % 32;
  const int n_cand = p.n_chunks - 3;
  const int64_t row = item / n_cand;  // query * n_heads + head
  const int j = 1 + static_cast<int>(item % n_cand);
  const int h = static_cast<int>(row % p.n_heads);
  const int g = h / (p.n_heads / p.n_kv_heads);
  const int d = p.head_dim;
  const int64_t block = p.d_block_table[j];
  const float* q = p.d_q + row * d;
  float acc = 0.0f;
  if (p.kind == ScoreKind::kBound) {
    const float* mn = p.summaries.d_bound + (block * p.n_kv_heads + g) * 2 * d;
    const float* mx = mn + d;
    for (int c = lane; c < d; c += 32) acc += fmaxf(q[c] * mx[c], q[c] * mn[c]);
  } else {
    const float* s = p.kind == ScoreKind::kLongHeads
                         ? p.summaries.d_longheads + (block * p.n_heads + h) * d
                         : p.summaries.d_mean + (block * p.n_kv_heads + g) * d;
    for (int c = lane; c < d; c += 32) acc += q[c] * s[c];
  }
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) p.d_scores[row * p.n_chunks + j] = acc;
}

// One thread per (query, kv group, candidate): every head of the group gets
// the sum over the group's heads, added in head order.
__global__ void GroupSumKernel(ChunkScoreParams p, int64_t n_items) {
  const int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (item >= n_items) return;
  const int n_cand = p.n_chunks - 3;
  const int j = 1 + static_cast<int>(item % n_cand);
  const int64_t qg = item / n_cand;  // query * n_kv_heads + group
  const int group = p.n_heads / p.n_kv_heads;
  const int64_t i = qg / p.n_kv_heads;
  const int g = static_cast<int>(qg % p.n_kv_heads);
  float* first = p.d_scores + (i * p.n_heads + static_cast<int64_t>(g) * group) * p.n_chunks;
  float sum = first[j];
  for (int h = 1; h < group; ++h) sum += first[static_cast<int64_t>(h) * p.n_chunks + j];
  for (int h = 0; h < group; ++h) first[static_cast<int64_t>(h) * p.n_chunks + j] = sum;
}

}  // namespace

CudaStatus ScoreChunks(const ChunkScoreParams& p) {
  if (p.n_queries < 0 || p.n_heads <= 0 || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0 ||
      p.head_dim <= 0 || p.n_chunks < 0) {
    return CudaStatus::kInvalidShape;
  }
  if (p.n_chunks <= 3 || p.n_queries == 0) return CudaStatus::kOk;  // no candidates
  const int64_t n_items = static_cast<int64_t>(p.n_queries) * p.n_heads * (p.n_chunks - 3);
  cudaStream_t stream = AsStream(p.stream);
  ScoreKernel<<<static_cast<unsigned>((n_items + kWarpsPerBlock - 1) / kWarpsPerBlock),
                kWarpsPerBlock * 32, 0, stream>>>(p, n_items);
  HR_CUDA_RETURN_IF_ERROR(LaunchStatus());
  if (p.sum_over_group && p.n_heads > p.n_kv_heads) {
    const int64_t n_sum = static_cast<int64_t>(p.n_queries) * p.n_kv_heads * (p.n_chunks - 3);
    GroupSumKernel<<<static_cast<unsigned>((n_sum + 255) / 256), 256, 0, stream>>>(p, n_sum);
    HR_CUDA_RETURN_IF_ERROR(LaunchStatus());
  }
  return CudaStatus::kOk;
}

}  // namespace hr::cuda
