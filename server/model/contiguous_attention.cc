#include "server/model/contiguous_attention.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/rope.h"
#include "server/common/status.h"

namespace hr {

ContiguousAttention::ContiguousAttention(const ModelConfig& config, int64_t capacity_tokens)
    : config_(config), capacity_(capacity_tokens) {
  const size_t per_layer =
      static_cast<size_t>(capacity_tokens * config.n_kv_heads * config.head_dim);
  keys_.resize(per_layer * config.n_layers);
  values_.resize(per_layer * config.n_layers);
}

absl::Status ContiguousAttention::Forward(int layer, int64_t n_tokens, const float* q,
                                          const float* k, const float* v, float* out) {
  HR_CHECK(layer >= 0 && layer < config_.n_layers, "layer out of range");
  if (length_ + n_tokens > capacity_) {
    return absl::ResourceExhaustedError(absl::StrCat("sequence of ", length_ + n_tokens,
                                                     " tokens exceeds its KV capacity of ",
                                                     capacity_, " tokens"));
  }
  const int64_t d = config_.head_dim;
  const int64_t kv_width = config_.n_kv_heads * d;
  const int64_t q_width = config_.n_heads * d;
  const cpu::Rope rope(d, config_.rope_theta, config_.rope_linear_scale, config_.rope_style);

  // Append keys (rotated at absolute positions) and values.
  float* layer_k = keys_.data() + static_cast<size_t>(layer) * capacity_ * kv_width;
  float* layer_v = values_.data() + static_cast<size_t>(layer) * capacity_ * kv_width;
  float* k_dst = layer_k + length_ * kv_width;
  std::memcpy(k_dst, k, sizeof(float) * n_tokens * kv_width);
  std::memcpy(layer_v + length_ * kv_width, v, sizeof(float) * n_tokens * kv_width);
  rope.ApplyRows(k_dst, n_tokens, kv_width, config_.n_kv_heads, static_cast<double>(length_));

  q_rot_.assign(q, q + n_tokens * q_width);
  rope.ApplyRows(q_rot_.data(), n_tokens, q_width, config_.n_heads, static_cast<double>(length_));

  cpu::CausalAttentionParams p;
  p.q = q_rot_.data();
  p.k = layer_k;
  p.v = layer_v;
  p.out = out;
  p.n_queries = n_tokens;
  p.first_query_pos = length_;
  p.n_heads = config_.n_heads;
  p.n_kv_heads = config_.n_kv_heads;
  p.head_dim = d;
  p.scale = 1.0f / std::sqrt(static_cast<float>(d));
  HR_CHECK(cpu::CausalAttention(p) == cpu::KernelStatus::kOk, "attention shape");
  return absl::OkStatus();
}

void ContiguousAttention::Commit(int64_t n_tokens) {
  HR_CHECK(length_ + n_tokens <= capacity_, "commit past capacity");
  length_ += n_tokens;
}

}  // namespace hr
