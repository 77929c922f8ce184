#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.h"

namespace hr::cuda {
namespace {

// One block per token; threads stride over the row.
template <typename T>
__global__ void EmbeddingKernel(const T* table, const int32_t* tokens, int64_t vocab, int64_t dim,
                                float* out) {
  const int64_t t = blockIdx.x;
  const int32_t id = tokens[t];
  float* row = out + t * dim;
  if (id < 0 || id >= vocab) {
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) row[i] = 0.0f;
    return;
  }
  const T* src = table + static_cast<int64_t>(id) * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) row[i] = ToF32(src[i]);
}

}  // namespace

CudaStatus Embedding(const EmbeddingParams& p) {
  if (p.n_tokens < 0 || p.vocab <= 0 || p.dim <= 0 || p.n_tokens > (int64_t{1} << 31) - 1) {
    return CudaStatus::kInvalidShape;
  }
  if (p.n_tokens == 0) return CudaStatus::kOk;
  HR_DISPATCH_DTYPE(p.dtype, {
    EmbeddingKernel<T><<<static_cast<unsigned>(p.n_tokens), 256, 0, AsStream(p.stream)>>>(
        static_cast<const T*>(p.d_table), p.d_tokens, p.vocab, p.dim, p.d_out);
    return LaunchStatus();
  })
}

}  // namespace hr::cuda
