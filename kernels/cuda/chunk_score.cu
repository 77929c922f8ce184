// Chunk scores (CPU reference: hr::ScoreChunk and the GQA sum in
// server/longctx/paged_sequence.cc).
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/selection.h"

namespace hr::cuda {
namespace {

// Whether candidate j is scored for query i: 1 <= j <= c_i - 2, with c_i the
// query's chunk (the last chunk's, n_chunks - 1, outside span and rows mode).
__device__ __forceinline__ bool IsCandidate(const ChunkScoreParams& p, int64_t i, int j) {
  const int64_t c = p.rows.positions != nullptr ? p.rows.positions[i] / p.chunk_size
                    : p.chunk_size > 0           ? (p.pos0 + i) / p.chunk_size
                                                 : p.n_chunks - 1;
  return j >= 1 && j <= c - 2;
}

// Decode (a few queries, or rows of several sequences): one warp per (query,
// head, candidate chunk), lanes over channels, so that a handful of queries
// still spread over the device.
constexpr int kWarpsPerBlock = 8;
constexpr int kWarpKernelMaxQueries = 4;

__global__ void ScoreWarpKernel(ChunkScoreParams p, int64_t n_items) {
  const int64_t item = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  if (item >= n_items) return;
  const int lane = threadIdx.x % 32;
  const int n_cand = p.n_chunks - 3;
  const int64_t row = item / n_cand;  // query * n_heads + head
  const int j = 1 + static_cast<int>(item % n_cand);
  if (!IsCandidate(p, row / p.n_heads, j)) return;
  const int h = static_cast<int>(row % p.n_heads);
  const int g = h / (p.n_heads / p.n_kv_heads);
  const int d = p.head_dim;
  const int64_t i = row / p.n_heads;
  const int64_t block = (p.rows.positions != nullptr ? p.rows.tables[i] : p.d_block_table)[j];
  const float* q = p.d_q + i * p.q_stride + static_cast<int64_t>(h) * d;
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

// Prefill: tiles of 16 candidate chunks x 32 queries of one head per block;
// 128 threads = 16 chunks x 8 query lanes (narrow chunk tiles waste little
// on the few candidates of short contexts).
constexpr int kTileChunks = 16;
constexpr int kTileQueries = 32;
constexpr int kScoreThreads = 128;
constexpr int kQueriesPerThread = kTileQueries / (kScoreThreads / kTileChunks);

// Floats of one chunk's summary (R rows of D: bound min then max) and of one
// query in shared memory: padded by 4 so that rows stay 16-byte aligned
// (float4 reads) and the 16 chunks a warp reads at once fall in distinct
// bank quads (a stride of 4 words mod 32).
template <int R, int D>
constexpr int SummaryStride() {
  return R * D + 4;
}
template <int D>
constexpr int QueryStride() {
  return D + 4;
}
template <int R, int D>
constexpr int64_t ScoreTileSmemBytes() {
  return (int64_t{kTileChunks} * SummaryStride<R, D>() + int64_t{kTileQueries} * QueryStride<D>()) * 4;
}

// The block's chunks' summaries and queries are staged in shared memory
// once (the warp kernel reads each summary once per query). Each thread then
// scores its chunk against 4 queries (every 8th of the tile) at once: per 4
// channels one float4 of the summary (two for bound) and one of each query,
// channels added in order (the order and arithmetic of one query at a time).
// With the head size a runtime value, one query at a time and the candidate
// test by a 64-bit division per (query, chunk), this kernel was instruction-
// bound: 46 us per launch at 4096 tokens (bench/results/cuda_h200_prefill.md).
template <int R, int D>  // summary rows: 1 (longheads, mean) or 2 (bound); head size
__global__ void __launch_bounds__(kScoreThreads) ScoreTileKernel(ChunkScoreParams p) {
  constexpr int SS = SummaryStride<R, D>(), QS = QueryStride<D>();
  extern __shared__ __align__(16) float smem[];
  float* summ = smem;                       // [kTileChunks][SS]
  float* qs = summ + kTileChunks * SS;      // [kTileQueries][QS]
  __shared__ int64_t blocks[kTileChunks];
  __shared__ int q_chunk[kTileQueries];     // each query's chunk (-1 past the last query: no candidates)
  const int h = blockIdx.z;
  const int g = h / (p.n_heads / p.n_kv_heads);
  const int n_cand = p.n_chunks - 3;  // candidates of the last chunk's queries
  const int cand0 = blockIdx.x * kTileChunks;
  const int q0 = blockIdx.y * kTileQueries;
  // Block ids first, so that the staging loads below do not wait on them.
  if (threadIdx.x < kTileChunks) {
    blocks[threadIdx.x] = cand0 + threadIdx.x < n_cand ? p.d_block_table[1 + cand0 + threadIdx.x] : -1;
  } else if (threadIdx.x < kTileChunks + kTileQueries) {
    const int qi = threadIdx.x - kTileChunks;
    q_chunk[qi] = q0 + qi >= p.n_queries ? -1
                  : p.chunk_size > 0     ? static_cast<int>((p.pos0 + q0 + qi) / p.chunk_size)
                                         : p.n_chunks - 1;
  }
  __syncthreads();
#pragma unroll 8
  for (int idx = threadIdx.x; idx < kTileChunks * R * D; idx += kScoreThreads) {
    const int ci = idx / (R * D), rest = idx % (R * D);
    float v = 0.0f;
    if (blocks[ci] >= 0) {
      const int64_t block = blocks[ci];
      const float* src =
          p.kind == ScoreKind::kBound       ? p.summaries.d_bound + (block * p.n_kv_heads + g) * 2 * D
          : p.kind == ScoreKind::kLongHeads ? p.summaries.d_longheads + (block * p.n_heads + h) * D
                                            : p.summaries.d_mean + (block * p.n_kv_heads + g) * D;
      v = src[rest];
    }
    summ[ci * SS + rest] = v;
  }
#pragma unroll 8
  for (int idx = threadIdx.x; idx < kTileQueries * D; idx += kScoreThreads) {  // loads 8 at a time in flight
    const int qi = idx / D, c = idx % D;
    qs[qi * QS + c] = q0 + qi < p.n_queries ? p.d_q[static_cast<int64_t>(q0 + qi) * p.q_stride + h * D + c] : 0.0f;
  }
  __syncthreads();
  const int ci = threadIdx.x % kTileChunks, qg = threadIdx.x / kTileChunks;
  const int j = 1 + cand0 + ci;
  bool cand[kQueriesPerThread];
  bool any = false;
#pragma unroll
  for (int k = 0; k < kQueriesPerThread; ++k) {
    cand[k] = j <= q_chunk[qg + 8 * k] - 2;  // (j >= 1)
    any |= cand[k];
  }
  if (!any) return;
  const float* sr = summ + ci * SS;
  float acc[kQueriesPerThread] = {};
#pragma unroll
  for (int c = 0; c < D; c += 4) {
    const float4 lo = *reinterpret_cast<const float4*>(sr + c);  // the summary; bound: the minima
    const float4 hi = R == 2 ? *reinterpret_cast<const float4*>(sr + D + c) : lo;  // bound: the maxima
#pragma unroll
    for (int k = 0; k < kQueriesPerThread; ++k) {
      const float4 q = *reinterpret_cast<const float4*>(qs + (qg + 8 * k) * QS + c);
      if constexpr (R == 2) {
        acc[k] += fmaxf(q.x * hi.x, q.x * lo.x);
        acc[k] += fmaxf(q.y * hi.y, q.y * lo.y);
        acc[k] += fmaxf(q.z * hi.z, q.z * lo.z);
        acc[k] += fmaxf(q.w * hi.w, q.w * lo.w);
      } else {
        acc[k] += q.x * lo.x;
        acc[k] += q.y * lo.y;
        acc[k] += q.z * lo.z;
        acc[k] += q.w * lo.w;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kQueriesPerThread; ++k) {
    if (cand[k]) p.d_scores[(static_cast<int64_t>(q0 + qg + 8 * k) * p.n_heads + h) * p.n_chunks + j] = acc[k];
  }
}

template <int R, int D>
CudaStatus LaunchScoreTile(const ChunkScoreParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.n_chunks - 3 + kTileChunks - 1) / kTileChunks),
                  static_cast<unsigned>((p.n_queries + kTileQueries - 1) / kTileQueries),
                  static_cast<unsigned>(p.n_heads));
  if (grid.y > 65535) return CudaStatus::kInvalidShape;
  HR_CUDA_RETURN_IF_ERROR(
      AllowSharedMemory(reinterpret_cast<const void*>(&ScoreTileKernel<R, D>), ScoreTileSmemBytes<R, D>()));
  ScoreTileKernel<R, D><<<grid, kScoreThreads, ScoreTileSmemBytes<R, D>(), stream>>>(p);
  return LaunchStatus();
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
  if (!IsCandidate(p, i, j)) return;
  float* first = p.d_scores + (i * p.n_heads + static_cast<int64_t>(g) * group) * p.n_chunks;
  float sum = first[j];
  for (int h = 1; h < group; ++h) sum += first[static_cast<int64_t>(h) * p.n_chunks + j];
  for (int h = 0; h < group; ++h) first[static_cast<int64_t>(h) * p.n_chunks + j] = sum;
}

CudaStatus SumOverGroups(const ChunkScoreParams& p, cudaStream_t stream) {
  if (!p.sum_over_group || p.n_heads == p.n_kv_heads) return CudaStatus::kOk;
  const int64_t n_sum = static_cast<int64_t>(p.n_queries) * p.n_kv_heads * (p.n_chunks - 3);
  GroupSumKernel<<<static_cast<unsigned>((n_sum + 255) / 256), 256, 0, stream>>>(p, n_sum);
  return LaunchStatus();
}

}  // namespace

CudaStatus ScoreChunks(const ChunkScoreParams& params) {
  ChunkScoreParams p = params;
  const bool several = p.rows.positions != nullptr;  // rows of several sequences
  if (p.q_stride == 0) p.q_stride = static_cast<int64_t>(p.n_heads) * p.head_dim;
  if (p.n_queries < 0 || p.n_heads <= 0 || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0 ||
      p.head_dim <= 0 || p.n_chunks < 0 || p.chunk_size < 0 ||
      p.q_stride < static_cast<int64_t>(p.n_heads) * p.head_dim ||
      (several && (p.chunk_size <= 0 || p.rows.tables == nullptr)) ||
      (!several && p.chunk_size > 0 &&
       (p.pos0 < 0 || (p.n_queries > 0 && (p.pos0 + p.n_queries - 1) / p.chunk_size >= p.n_chunks)))) {
    return CudaStatus::kInvalidShape;
  }
  if (p.n_chunks <= 3 || p.n_queries == 0) return CudaStatus::kOk;  // no candidates
  if (p.n_heads > 65535) return CudaStatus::kInvalidShape;
  cudaStream_t stream = AsStream(p.stream);
  if (p.n_queries <= kWarpKernelMaxQueries || several) {
    const int64_t n_items = static_cast<int64_t>(p.n_queries) * p.n_heads * (p.n_chunks - 3);
    ScoreWarpKernel<<<static_cast<unsigned>((n_items + kWarpsPerBlock - 1) / kWarpsPerBlock), kWarpsPerBlock * 32,
                      0, stream>>>(p, n_items);
    HR_CUDA_RETURN_IF_ERROR(LaunchStatus());
    return SumOverGroups(p, stream);
  }
  const bool bound = p.kind == ScoreKind::kBound;
  HR_DISPATCH_HEAD_DIM(p.head_dim, {
    const CudaStatus s = bound ? LaunchScoreTile<2, D>(p, stream) : LaunchScoreTile<1, D>(p, stream);
    return s != CudaStatus::kOk ? s : SumOverGroups(p, stream);
  })
}

}  // namespace hr::cuda
