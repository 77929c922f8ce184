// A LLaMA model's weights in device memory, laid out for the CUDA forward
// pass: per layer one fused QKV matrix ([wq; wk; wv], rows q | k | v) and one
// fused gate/up matrix ([w_gate; w_up]), so each takes one GEMM.
//
// Matrices are in the chosen dtype (F32, or BF16 rounded to nearest even);
// the token embedding table and the norm weights are always F32. The LM head
// is its own copy even when tied to the embedding.
//
// Thread-safety: immutable after Upload. Owns its device memory.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_DEVICE_WEIGHTS_H_
#define HEADROOM_SERVER_BACKEND_CUDA_DEVICE_WEIGHTS_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/common.h"
#include "server/backend_cuda/device_buffer.h"
#include "server/model/weights.h"

namespace hr {

struct DeviceLayerWeights {
  DeviceBuffer attn_norm;  // F32 [dim]
  DeviceBuffer wqkv;       // [(n_heads + 2·n_kv_heads)·head_dim, dim]
  DeviceBuffer wo;         // [dim, n_heads·head_dim]
  DeviceBuffer ffn_norm;   // F32 [dim]
  DeviceBuffer w_gate_up;  // [2·ffn_dim, dim]
  DeviceBuffer w_down;     // [dim, ffn_dim]
};

class DeviceWeights {
 public:
  // `matrix_dtype` is kF32 or kBF16. RESOURCE_EXHAUSTED when device memory
  // runs out; INTERNAL for a failed copy.
  static absl::StatusOr<std::unique_ptr<DeviceWeights>> Upload(const LlamaWeights& weights,
                                                               cuda::DType matrix_dtype);

  cuda::DType matrix_dtype() const { return matrix_dtype_; }
  const float* tok_embd() const { return tok_embd_.as<float>(); }  // [vocab, dim]
  const DeviceLayerWeights& layer(int64_t l) const { return layers_[l]; }
  const float* output_norm() const { return output_norm_.as<float>(); }
  const void* output() const { return output_.get(); }  // [vocab, dim]
  int64_t bytes() const { return bytes_; }

 private:
  explicit DeviceWeights(cuda::DType matrix_dtype) : matrix_dtype_(matrix_dtype) {}
  // Uploads the row-wise concatenation of `parts` in the matrix dtype.
  absl::Status UploadMatrix(std::initializer_list<Matrix> parts, DeviceBuffer* out);
  absl::Status UploadF32(const Matrix& m, DeviceBuffer* out);

  const cuda::DType matrix_dtype_;
  DeviceBuffer tok_embd_, output_norm_, output_;
  std::vector<DeviceLayerWeights> layers_;
  int64_t bytes_ = 0;
};

// Round to nearest even, as the device's __float2bfloat16_rn (NaN kept NaN).
uint16_t F32ToBF16(float x);

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_DEVICE_WEIGHTS_H_
