// Merging split-K partial softmax states (internal to kernels/cuda).
//
// Workspace rows: for each (query, head) row, n_splits partial states of
// [2 + D] floats: the running maximum m (log2 domain), the sum l of
// exp2(score − m), and the accumulator Σ exp2(score − m)·v. A split that saw
// no key has m = −inf and is skipped; every row must have one that did.
#ifndef HEADROOM_KERNELS_CUDA_SPLIT_COMBINE_CUH_
#define HEADROOM_KERNELS_CUDA_SPLIT_COMBINE_CUH_

#include <cmath>
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace hr::cuda {

// kLanes = min(32, D/2) threads per row, each merging kPairs float pairs
// (8-byte loads: a state's accumulator starts 2 floats in, D + 2 is even),
// 256 / kLanes rows per block. Per element the same arithmetic in the same
// split order as one thread per element: results are unchanged; a block of
// D threads per row ran at ~1/3 of the memory rate (cuda_h200_prefill.md).
template <int D>
struct CombineShape {
  static constexpr int kLanes = D / 2 < 32 ? D / 2 : 32;
  static constexpr int kPairs = D / (2 * kLanes);
  static constexpr int kThreads = 256;
  static constexpr int kRowsPerBlock = kThreads / kLanes;
};

// The splits z0, z0 + step, ... < n_splits of one row (`base`) weighted
// against the maximum mx, in that order: sum = Σ l·w, acc[k] = Σ v·w over
// this lane's pairs (w = exp2(m - mx); splits with m = -inf skipped). Each
// split's loads come before its test, so that the unrolled iterations' loads
// are in flight together.
template <int D>
__device__ __forceinline__ void SumSplits(const float* base, int z0, int step, int n_splits, int lane, float mx,
                                          float* sum, float2* acc) {
  using S = CombineShape<D>;
#pragma unroll
  for (int k = 0; k < S::kPairs; ++k) acc[k] = make_float2(0.0f, 0.0f);
  *sum = 0.0f;
#pragma unroll 4
  for (int z = z0; z < n_splits; z += step) {
    const float* st = base + z * (D + 2);
    const float mz = st[0], lz = st[1];
    float2 v[S::kPairs];
#pragma unroll
    for (int k = 0; k < S::kPairs; ++k) v[k] = *reinterpret_cast<const float2*>(st + 2 + 2 * (lane + k * S::kLanes));
    if (mz == -INFINITY) continue;
    const float wgt = exp2f(mz - mx);
    *sum += lz * wgt;
#pragma unroll
    for (int k = 0; k < S::kPairs; ++k) {
      acc[k].x += v[k].x * wgt;
      acc[k].y += v[k].y * wgt;
    }
  }
}

// The maximum over the splits with the lanes over the splits (fmaxf is
// exact in any order); then the weighted sums in split order, as before
// (SumSplits). (One lane group walking the splits twice, a load at a time,
// took 20 us per launch for the 12 rows x 64 splits of a decode step at a
// 4096-token context, twice the decode kernel's time: ncu on an H200,
// bench/results/cuda_h200_prefill.md.)
template <int D>
__global__ void CombineSplitsKernel(const float* ws, int64_t rows, int n_splits, OutRows out) {
  using S = CombineShape<D>;
  const int64_t row = blockIdx.x * static_cast<int64_t>(S::kRowsPerBlock) + threadIdx.x / S::kLanes;
  const bool valid = row < rows;  // every lane stays for the shuffles
  const int lane = threadIdx.x % S::kLanes;
  const float* base = ws + (valid ? row : 0) * n_splits * (D + 2);
  float mx = -INFINITY;
  if (valid) {
    for (int z = lane; z < n_splits; z += S::kLanes) mx = fmaxf(mx, base[z * (D + 2)]);
  }
  for (int o = S::kLanes / 2; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o, S::kLanes));
  if (!valid) return;
  float sum = 0.0f;
  float2 acc[S::kPairs];
  SumSplits<D>(base, 0, 1, n_splits, lane, mx, &sum, acc);
#pragma unroll
  for (int k = 0; k < S::kPairs; ++k) {
    out.Store2(row * D + 2 * (lane + k * S::kLanes), acc[k].x / sum, acc[k].y / sum);
  }
}

// Many splits (a decode step of few rows: 12 rows x 64 splits at a
// 4096-token context) leave CombineSplitsKernel's few lane groups walking
// long split lists. Here a block per row: the maximum over all its threads,
// then each of kGroups lane groups sums every kGroups-th split against that
// maximum, and the groups' sums are added in group order through shared
// memory. (The order of the additions differs from CombineSplitsKernel's:
// the same result up to FP32 rounding.) Prefill spans of few tiles get 16
// splits too: PrefillAttention over a 256-query chunk at 4K-128K contexts
// was equal or faster with it (cuda_bench, H200, cuda_h200_prefill.md).
constexpr int kCombineWideMinSplits = 16;

template <int D>
__global__ void __launch_bounds__(CombineShape<D>::kThreads) CombineWideKernel(const float* ws, int n_splits,
                                                                               OutRows out) {
  using S = CombineShape<D>;
  constexpr int kGroups = S::kThreads / S::kLanes;
  __shared__ float red[S::kThreads / 32];
  __shared__ float part[kGroups][D + 1];  // each group's sums: D accumulators, then the weight sum
  const int64_t row = blockIdx.x;
  const int grp = threadIdx.x / S::kLanes, lane = threadIdx.x % S::kLanes;
  const float* base = ws + row * n_splits * (D + 2);
  float mx = -INFINITY;
  for (int z = threadIdx.x; z < n_splits; z += S::kThreads) mx = fmaxf(mx, base[z * (D + 2)]);
  for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = red[0];
#pragma unroll
  for (int w = 1; w < S::kThreads / 32; ++w) mx = fmaxf(mx, red[w]);
  float sum = 0.0f;
  float2 acc[S::kPairs];
  SumSplits<D>(base, grp, kGroups, n_splits, lane, mx, &sum, acc);
#pragma unroll
  for (int k = 0; k < S::kPairs; ++k) {
    part[grp][2 * (lane + k * S::kLanes)] = acc[k].x;
    part[grp][2 * (lane + k * S::kLanes) + 1] = acc[k].y;
  }
  if (lane == 0) part[grp][D] = sum;
  __syncthreads();
  for (int t = threadIdx.x; t < D; t += S::kThreads) {
    float a = 0.0f, l = 0.0f;
#pragma unroll 8
    for (int g = 0; g < kGroups; ++g) {
      a += part[g][t];
      l += part[g][D];
    }
    out.Store(row * D + t, a / l);
  }
}

template <int D>
CudaStatus CombineSplits(const float* ws, int64_t rows, int n_splits, OutRows out, cudaStream_t stream) {
  using S = CombineShape<D>;
  if (rows == 0) return CudaStatus::kOk;
  if (n_splits >= kCombineWideMinSplits) {
    if (rows > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
    CombineWideKernel<D><<<static_cast<unsigned>(rows), S::kThreads, 0, stream>>>(ws, n_splits, out);
    return LaunchStatus();
  }
  const int64_t blocks = (rows + S::kRowsPerBlock - 1) / S::kRowsPerBlock;
  if (blocks > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
  CombineSplitsKernel<D><<<static_cast<unsigned>(blocks), S::kThreads, 0, stream>>>(ws, rows, n_splits, out);
  return LaunchStatus();
}

// Bytes of a workspace of `splits` partial states for each of `rows` rows.
inline size_t SplitWorkspaceBytes(int64_t rows, int32_t head_dim, int32_t splits) {
  return static_cast<size_t>(rows) * splits * (head_dim + 2) * sizeof(float);
}

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_SPLIT_COMBINE_CUH_
