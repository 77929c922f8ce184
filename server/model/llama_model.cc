#include "server/model/llama_model.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/norm.h"
#include "server/common/status.h"
#include "server/model/batch_layout.h"
#include "server/model/contiguous_attention.h"

namespace hr {
namespace {

void Grow(std::vector<float>& buf, int64_t n) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
}

}  // namespace

LlamaModel::LlamaModel(const LlamaWeights& weights) : weights_(weights) {}

std::unique_ptr<SequenceAttention> LlamaModel::NewSequence(int64_t capacity_tokens) const {
  return std::make_unique<ContiguousAttention>(weights_.config, capacity_tokens);
}

absl::Status LlamaModel::Forward(std::span<const BatchEntry> batch, std::vector<float>* logits) {
  const ModelConfig& c = weights_.config;
  const int64_t dim = c.dim;
  const int64_t q_width = c.n_heads * c.head_dim;
  const int64_t kv_width = c.n_kv_heads * c.head_dim;

  HR_ASSIGN_OR_RETURN(const BatchLayout layout, LayOutBatch(batch, c.vocab_size));
  const std::vector<int64_t>& offset = layout.offset;
  const int64_t n = layout.n_tokens;
  const int64_t n_logit_rows = layout.n_logit_rows;

  Grow(x_, n * dim);
  Grow(xn_, n * dim);
  Grow(q_, n * q_width);
  Grow(k_, n * kv_width);
  Grow(v_, n * kv_width);
  Grow(attn_, n * q_width);
  Grow(gate_, n * c.ffn_dim);
  Grow(up_, n * c.ffn_dim);

  // Embeddings.
  for (size_t e = 0; e < batch.size(); ++e) {
    for (size_t i = 0; i < batch[e].tokens.size(); ++i) {
      std::memcpy(x_.data() + (offset[e] + i) * dim,
                  weights_.tok_embd.data + static_cast<int64_t>(batch[e].tokens[i]) * dim,
                  sizeof(float) * dim);
    }
  }

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    cpu::RmsNorm(x_.data(), w.attn_norm.data, n, dim, c.rms_eps, xn_.data());
    cpu::MatMulWt(xn_.data(), n, dim, w.wq.data, q_width, q_.data());
    cpu::MatMulWt(xn_.data(), n, dim, w.wk.data, kv_width, k_.data());
    cpu::MatMulWt(xn_.data(), n, dim, w.wv.data, kv_width, v_.data());
    for (size_t e = 0; e < batch.size(); ++e) {
      const int64_t r = offset[e];
      const int64_t len = offset[e + 1] - r;
      absl::Status s = batch[e].sequence->Forward(
          static_cast<int>(l), len, q_.data() + r * q_width, k_.data() + r * kv_width,
          v_.data() + r * kv_width, attn_.data() + r * q_width);
      if (!s.ok()) return s;
    }
    // x += attn · Woᵀ  (xn_ reused as the projection output)
    cpu::MatMulWt(attn_.data(), n, q_width, w.wo.data, dim, xn_.data());
    for (int64_t i = 0; i < n * dim; ++i) x_[i] += xn_[i];

    cpu::RmsNorm(x_.data(), w.ffn_norm.data, n, dim, c.rms_eps, xn_.data());
    cpu::MatMulWt(xn_.data(), n, dim, w.w_gate.data, c.ffn_dim, gate_.data());
    cpu::MatMulWt(xn_.data(), n, dim, w.w_up.data, c.ffn_dim, up_.data());
    cpu::SiluMul(gate_.data(), up_.data(), n * c.ffn_dim);
    cpu::MatMulWt(gate_.data(), n, c.ffn_dim, w.w_down.data, dim, xn_.data());
    for (int64_t i = 0; i < n * dim; ++i) x_[i] += xn_[i];
  }
  for (const BatchEntry& entry : batch) entry.sequence->Commit(static_cast<int64_t>(entry.tokens.size()));

  // Gather the rows whose logits were asked for, then one output GEMM.
  Grow(last_, n_logit_rows * dim);
  GatherLogitRows(batch, layout, x_.data(), dim, last_.data());
  cpu::RmsNorm(last_.data(), weights_.output_norm.data, n_logit_rows, dim, c.rms_eps, last_.data());
  logits->resize(n_logit_rows * c.vocab_size);
  cpu::MatMulWt(last_.data(), n_logit_rows, dim, weights_.output.data, c.vocab_size, logits->data());
  return absl::OkStatus();
}

}  // namespace hr
