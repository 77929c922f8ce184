// Row-wise and element-wise kernels of the forward pass: embedding gather,
// RMSNorm, SwiGLU. CPU references: kernels/cpu/norm.h, activation.h.
#ifndef HEADROOM_KERNELS_CUDA_ELEMENTWISE_H_
#define HEADROOM_KERNELS_CUDA_ELEMENTWISE_H_

#include <cstdint>

#include "kernels/cuda/common.h"

namespace hr::cuda {

// out[t] = table[tokens[t]] converted to F32. Token ids outside [0, vocab)
// give rows of zeros (the caller validates ids; the kernel never reads out of
// bounds).
struct EmbeddingParams {
  const void* d_table;      // [vocab, dim] in `dtype`
  DType dtype = DType::kF32;
  const int32_t* d_tokens;  // [n_tokens]
  int64_t n_tokens = 0;
  int64_t vocab = 0;
  int64_t dim = 0;
  float* d_out;             // [n_tokens, dim]
  Stream stream = nullptr;
};
CudaStatus Embedding(const EmbeddingParams& p);

// y = x / sqrt(mean(x²) + eps) · weight, per row.
struct RmsNormParams {
  const float* d_x;       // [rows, dim]
  const float* d_weight;  // [dim]
  float* d_y;             // [rows, dim] (may alias d_x)
  int64_t rows;
  int64_t dim;
  float eps;
  Stream stream = nullptr;
};
CudaStatus RmsNorm(const RmsNormParams& p);

// gate[i] = silu(gate[i]) · up[i] (SwiGLU), in place.
struct SwiGluParams {
  float* d_gate;        // [n]
  const float* d_up;    // [n]
  int64_t n = 0;
  Stream stream = nullptr;
};
CudaStatus SwiGlu(const SwiGluParams& p);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_ELEMENTWISE_H_
