#include "server/model/seqpe/seqpe_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/slot_attention.h"
#include "server/common/status.h"

namespace hr {
namespace {

// Largest bias cache kept across the layers of one Forward call (floats):
// always enough for decode steps; long prefill runs recompute per layer.
constexpr int64_t kMaxBiasFloats = int64_t{1} << 22;  // 16 MB

}  // namespace

float PositionBias(const SeqPeConfig& c, const float* row_i, const float* row_j, int64_t head) {
  const int64_t dh = c.bias_head_dim();
  const float* pq = row_i + c.pq_offset() + head * dh;
  const float* pk = row_j + c.pk_offset() + head * dh;
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t t = 0; t < dh; ++t) s += pq[t] * pk[t];
  return s * c.scalar_scale / std::sqrt(static_cast<float>(c.head_dim));
}

SeqPeAttention::SeqPeAttention(const SeqPeConfig& config, PositionTable* table,
                               int64_t capacity_tokens)
    : config_(config), table_(table), capacity_(capacity_tokens) {
  const size_t per_layer = static_cast<size_t>(capacity_tokens * config.dim);
  keys_.resize(per_layer * config.n_layers);
  values_.resize(per_layer * config.n_layers);
}

void SeqPeAttention::ComputeBias(int64_t n_tokens) {
  const int64_t hb_count = config_.bias_heads();
  const int64_t n_keys_max = length_ + n_tokens;
  bias_valid_ = n_tokens * hb_count * n_keys_max <= kMaxBiasFloats;
  if (!bias_valid_) return;
  bias_.resize(n_tokens * hb_count * n_keys_max);
#pragma omp parallel for if (n_tokens * hb_count * n_keys_max > (int64_t{1} << 12))
  for (int64_t job = 0; job < n_tokens * hb_count; ++job) {
    const int64_t i = job / hb_count;
    const int64_t hb = job % hb_count;
    const float* row_i = table_->Row(length_ + i);
    float* b = bias_.data() + job * n_keys_max;
    for (int64_t j = 0; j <= length_ + i; ++j)
      b[j] = PositionBias(config_, row_i, table_->Row(j), hb);
  }
}

absl::Status SeqPeAttention::Forward(int layer, int64_t n_tokens, const float* q, const float* k,
                                     const float* v, float* out) {
  HR_CHECK(layer >= 0 && layer < config_.n_layers, "layer out of range");
  if (length_ + n_tokens > capacity_) {
    return absl::ResourceExhaustedError(absl::StrCat("sequence of ", length_ + n_tokens,
                                                     " tokens exceeds its KV capacity of ",
                                                     capacity_, " tokens"));
  }
  const bool scalar = config_.apply == PeApply::kAttnScalar;
  // Every position must be encodable, whatever the form: OUT_OF_RANGE past
  // the digit budget (input_add rows were read by the forward pass already).
  if (scalar || length_ + n_tokens > table_->budget()) {
    HR_RETURN_IF_ERROR(table_->Ensure(length_ + n_tokens));
  }

  const int64_t d = config_.head_dim;
  const int64_t n_heads = config_.n_heads;
  const int64_t width = config_.dim;
  const size_t layer_offset = static_cast<size_t>(layer) * n_heads * capacity_ * d;
  float* layer_k = keys_.data() + layer_offset;
  float* layer_v = values_.data() + layer_offset;
  for (int64_t i = 0; i < n_tokens; ++i) {
    for (int64_t h = 0; h < n_heads; ++h) {
      const size_t dst = (static_cast<size_t>(h) * capacity_ + length_ + i) * d;
      std::memcpy(layer_k + dst, k + i * width + h * d, sizeof(float) * d);
      std::memcpy(layer_v + dst, v + i * width + h * d, sizeof(float) * d);
    }
  }
  if (scalar && layer == 0) ComputeBias(n_tokens);

  const int64_t n_keys_max = length_ + n_tokens;
  const int64_t hb_count = config_.bias_heads();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t work = n_tokens * n_heads * n_keys_max * d;
#pragma omp parallel if (work > (int64_t{1} << 16))
  {
    std::vector<float> scores(n_keys_max);
#pragma omp for schedule(dynamic, 1)
    for (int64_t job = 0; job < n_tokens * n_heads; ++job) {
      const int64_t i = job / n_heads;
      const int64_t h = job % n_heads;
      const int64_t pos = length_ + i;
      const int64_t n_keys = pos + 1;
      const float* head_k = layer_k + static_cast<size_t>(h) * capacity_ * d;
      const float* head_v = layer_v + static_cast<size_t>(h) * capacity_ * d;
      cpu::DotRows(q + i * width + h * d, head_k, n_keys, d, scores.data());
      for (int64_t j = 0; j < n_keys; ++j) scores[j] *= scale;
      if (scalar) {
        const int64_t hb = config_.multi_head ? h : 0;
        if (bias_valid_) {
          const float* b = bias_.data() + (i * hb_count + hb) * n_keys_max;
          for (int64_t j = 0; j < n_keys; ++j) scores[j] += b[j];
        } else {
          const float* row_i = table_->Row(pos);
          for (int64_t j = 0; j < n_keys; ++j) {
            scores[j] += PositionBias(config_, row_i, table_->Row(j), hb);
          }
        }
      }
      cpu::Softmax(scores.data(), n_keys);
      float* o = out + i * width + h * d;
      std::fill(o, o + d, 0.0f);
      cpu::AccumulateWeightedRows(scores.data(), head_v, n_keys, d, o);
    }
  }
  return absl::OkStatus();
}

void SeqPeAttention::Commit(int64_t n_tokens) {
  HR_CHECK(length_ + n_tokens <= capacity_, "commit past capacity");
  length_ += n_tokens;
}

}  // namespace hr
