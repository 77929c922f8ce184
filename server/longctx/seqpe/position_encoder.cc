#include "server/longctx/seqpe/position_encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/activation.h"
#include "server/common/status.h"

namespace hr {
namespace {

// Positions encoded per batch: bounds the scratch to about
// kBatch · (max_digits + 1) · max(4·E, ffn_dim) floats.
constexpr int64_t kBatch = 256;

}  // namespace

absl::Status PositionDigits(const PositionEncoderConfig& config, int64_t position,
                            std::span<int32_t> digits, int64_t* n_padding) {
  HR_CHECK(static_cast<int64_t>(digits.size()) == config.max_digits, "digits span size");
  if (position < 0) {
    return absl::InvalidArgumentError(absl::StrCat("SeqPE position ", position, " is negative"));
  }
  const int64_t budget = config.PositionBudget();
  if (position >= budget) {
    return absl::OutOfRangeError(absl::StrCat(
        "SeqPE position ", position, " is beyond the position encoder's digit budget: ",
        config.max_digits, " base-", config.base, " digits represent positions 0 .. ", budget - 1));
  }
  int64_t p = position;
  for (int64_t t = config.max_digits - 1; t >= 0; --t) {
    digits[t] = static_cast<int32_t>(p % config.base);
    p /= config.base;
  }
  // The number's own digits: 0 has one ("0"), otherwise floor(log_base p) + 1.
  int64_t n_digits = 1;
  for (int64_t q = position / config.base; q > 0; q /= config.base) ++n_digits;
  *n_padding = config.max_digits - n_digits;
  return absl::OkStatus();
}

PositionEncoder::PositionEncoder(const PositionEncoderConfig& config,
                                 const PositionEncoderWeights& weights)
    : config_(config), weights_(weights) {}

absl::Status PositionEncoder::Encode(std::span<const int64_t> positions, float* out) const {
  const int64_t d_max = config_.max_digits;
  std::vector<int32_t> digits(kBatch * d_max);
  std::vector<int64_t> n_padding(kBatch);
  for (size_t first = 0; first < positions.size(); first += kBatch) {
    const int64_t n = std::min<int64_t>(kBatch, positions.size() - first);
    for (int64_t i = 0; i < n; ++i) {
      HR_RETURN_IF_ERROR(PositionDigits(config_, positions[first + i],
                                        std::span<int32_t>(digits.data() + i * d_max, d_max),
                                        &n_padding[i]));
    }
    EncodeBatch(digits.data(), n_padding.data(), n, out + first * config_.out_dim);
  }
  return absl::OkStatus();
}

void PositionEncoder::EncodeBatch(const int32_t* digits, const int64_t* n_padding, int64_t n,
                                  float* out) const {
  const PositionEncoderConfig& c = config_;
  const int64_t e = c.embed_dim;
  const int64_t d_max = c.max_digits;
  const int64_t t_len = d_max + 1;  // digits + CLS
  const int64_t rows = n * t_len;
  const int64_t n_heads = c.n_heads;
  const int64_t hd = e / n_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  std::vector<float> x(rows * e), xn(rows * e), q(rows * e), k(rows * e), v(rows * e),
      attn(rows * e), hidden(rows * c.ffn_dim);

  // Token embeddings.
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t t = 0; t < d_max; ++t) {
      float* xr = x.data() + (b * t_len + t) * e;
      const float* de = weights_.digit_embd.data + static_cast<int64_t>(digits[b * d_max + t]) * e;
      const float* se = weights_.slot_embd.data + t * e;
      for (int64_t i = 0; i < e; ++i) xr[i] = de[i] + se[i];
    }
    std::memcpy(x.data() + (b * t_len + d_max) * e, weights_.cls.data, sizeof(float) * e);
  }

  for (const Gpt2BlockWeights& w : weights_.blocks) {
    ApplyLayerNorm(w.ln1, c.layer_norm_eps, x.data(), rows, e, xn.data());
    ApplyLinearRows(w.attn_qkv, 0, e, xn.data(), rows, q.data());
    ApplyLinearRows(w.attn_qkv, e, e, xn.data(), rows, k.data());
    ApplyLinearRows(w.attn_qkv, 2 * e, e, xn.data(), rows, v.data());
    // Attention inside each position's token sequence (tiny: t_len keys).
#pragma omp parallel for if (n * n_heads * t_len * t_len * hd > (int64_t{1} << 16))
    for (int64_t job = 0; job < n * n_heads; ++job) {
      const int64_t b = job / n_heads;
      const int64_t h = job % n_heads;
      float scores[64];  // t_len <= max_digits + 1 <= 19
      for (int64_t t = 0; t < t_len; ++t) {
        const float* qr = q.data() + (b * t_len + t) * e + h * hd;
        float* o = attn.data() + (b * t_len + t) * e + h * hd;
        const int64_t last = c.causal ? t : t_len - 1;
        int64_t n_read = 0;
        for (int64_t j = 0; j <= last; ++j) {
          const bool padding = j < n_padding[b];  // the CLS (j = d_max) is never padding
          if (c.mask_padding && padding) {
            scores[j] = -INFINITY;
            continue;
          }
          const float* kr = k.data() + (b * t_len + j) * e + h * hd;
          float s = 0.0f;
          for (int64_t i = 0; i < hd; ++i) s += qr[i] * kr[i];
          scores[j] = s * scale;
          ++n_read;
        }
        std::fill(o, o + hd, 0.0f);
        if (n_read == 0) continue;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) mx = std::max(mx, scores[j]);
        float sum = 0.0f;
        for (int64_t j = 0; j <= last; ++j) {
          scores[j] = std::exp(scores[j] - mx);  // exp(-inf) = 0 for masked keys
          sum += scores[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= last; ++j) {
          if (scores[j] == 0.0f) continue;
          const float a = scores[j] * inv;
          const float* vr = v.data() + (b * t_len + j) * e + h * hd;
          for (int64_t i = 0; i < hd; ++i) o[i] += a * vr[i];
        }
      }
    }
    ApplyLinear(w.attn_out, attn.data(), rows, xn.data());
    for (int64_t i = 0; i < rows * e; ++i) x[i] += xn[i];
    AddMlp(w, c.layer_norm_eps, x.data(), rows, e, xn.data(), hidden.data(), q.data());
  }

  // CLS rows -> optional final LayerNorm -> out_proj / temperature.
  for (int64_t b = 0; b < n; ++b) {
    std::memcpy(xn.data() + b * e, x.data() + (b * t_len + d_max) * e, sizeof(float) * e);
  }
  if (c.final_layernorm) {
    ApplyLayerNorm(weights_.final_norm, c.layer_norm_eps, xn.data(), n, e, xn.data());
  }
  ApplyLinear(weights_.out_proj, xn.data(), n, out);
  if (c.temperature != 1.0f) {
    const float inv_t = 1.0f / c.temperature;
    for (int64_t i = 0; i < n * c.out_dim; ++i) out[i] *= inv_t;
  }
}

}  // namespace hr
