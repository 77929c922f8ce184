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

// One block per row; out[row][D].
template <int D>
__global__ void CombineSplitsKernel(const float* ws, int n_splits, float* out) {
  const int64_t row = blockIdx.x;
  const float* base = ws + row * n_splits * (D + 2);
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float mx = -INFINITY;
    for (int z = 0; z < n_splits; ++z) mx = fmaxf(mx, base[z * (D + 2)]);
    float sum = 0.0f, acc = 0.0f;
    for (int z = 0; z < n_splits; ++z) {
      const float mz = base[z * (D + 2)];
      if (mz == -INFINITY) continue;
      const float wgt = exp2f(mz - mx);
      sum += base[z * (D + 2) + 1] * wgt;
      acc += base[z * (D + 2) + 2 + c] * wgt;
    }
    out[row * D + c] = acc / sum;
  }
}

template <int D>
CudaStatus CombineSplits(const float* ws, int64_t rows, int n_splits, float* out, cudaStream_t stream) {
  if (rows > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
  CombineSplitsKernel<D><<<static_cast<unsigned>(rows), D, 0, stream>>>(ws, n_splits, out);
  return LaunchStatus();
}

// Bytes of a workspace of `splits` partial states for each of `rows` rows.
inline size_t SplitWorkspaceBytes(int64_t rows, int32_t head_dim, int32_t splits) {
  return static_cast<size_t>(rows) * splits * (head_dim + 2) * sizeof(float);
}

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_SPLIT_COMBINE_CUH_
