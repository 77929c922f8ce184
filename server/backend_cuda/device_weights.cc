#include "server/backend_cuda/device_weights.h"

#include <cstring>

#include "server/common/status.h"

namespace hr {

uint16_t F32ToBF16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Upload(const LlamaWeights& weights,
                                                                     cuda::DType matrix_dtype) {
  if (matrix_dtype != cuda::DType::kF32 && matrix_dtype != cuda::DType::kBF16) {
    return absl::InvalidArgumentError("device weights: matrices must be F32 or BF16");
  }
  std::unique_ptr<DeviceWeights> dw(new DeviceWeights(matrix_dtype));
  HR_RETURN_IF_ERROR(dw->UploadF32(weights.tok_embd, &dw->tok_embd_));
  HR_RETURN_IF_ERROR(dw->UploadF32(weights.output_norm, &dw->output_norm_));
  HR_RETURN_IF_ERROR(dw->UploadMatrix({weights.output}, &dw->output_));
  dw->layers_.resize(weights.layers.size());
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    const LayerWeights& w = weights.layers[l];
    DeviceLayerWeights& d = dw->layers_[l];
    HR_RETURN_IF_ERROR(dw->UploadF32(w.attn_norm, &d.attn_norm));
    HR_RETURN_IF_ERROR(dw->UploadMatrix({w.wq, w.wk, w.wv}, &d.wqkv));
    HR_RETURN_IF_ERROR(dw->UploadMatrix({w.wo}, &d.wo));
    HR_RETURN_IF_ERROR(dw->UploadF32(w.ffn_norm, &d.ffn_norm));
    HR_RETURN_IF_ERROR(dw->UploadMatrix({w.w_gate, w.w_up}, &d.w_gate_up));
    HR_RETURN_IF_ERROR(dw->UploadMatrix({w.w_down}, &d.w_down));
  }
  return dw;
}

absl::Status DeviceWeights::UploadF32(const Matrix& m, DeviceBuffer* out) {
  const int64_t bytes = m.rows * m.cols * int64_t{4};
  bytes_ += bytes;
  return out->Upload(m.data, bytes);
}

absl::Status DeviceWeights::UploadMatrix(std::initializer_list<Matrix> parts, DeviceBuffer* out) {
  int64_t n = 0;
  for (const Matrix& m : parts) n += m.rows * m.cols;
  if (matrix_dtype_ == cuda::DType::kF32) {
    std::vector<float> host(n);
    int64_t at = 0;
    for (const Matrix& m : parts) {
      std::memcpy(host.data() + at, m.data, sizeof(float) * m.rows * m.cols);
      at += m.rows * m.cols;
    }
    bytes_ += n * 4;
    return out->Upload(host.data(), n * 4);
  }
  std::vector<uint16_t> host(n);
  int64_t at = 0;
  for (const Matrix& m : parts) {
    for (int64_t i = 0; i < m.rows * m.cols; ++i) host[at + i] = F32ToBF16(m.data[i]);
    at += m.rows * m.cols;
  }
  bytes_ += n * 2;
  return out->Upload(host.data(), n * 2);
}

}  // namespace hr
