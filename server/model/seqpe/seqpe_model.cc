#include "server/model/seqpe/seqpe_model.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/gemm.h"
#include "server/common/status.h"
#include "server/model/batch_layout.h"
#include "server/model/seqpe/seqpe_attention.h"

namespace hr {
namespace {

void Grow(std::vector<float>& buf, int64_t n) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
}

}  // namespace

SeqPeModel::SeqPeModel(const SeqPeWeights& weights, std::shared_ptr<SeqPePositions> positions)
    : weights_(weights),
      positions_(positions != nullptr ? std::move(positions)
                                      : std::make_shared<SeqPePositions>(weights)) {}

std::unique_ptr<SequenceAttention> SeqPeModel::NewSequence(int64_t capacity_tokens) const {
  return std::make_unique<SeqPeAttention>(weights_.config, &positions_->table(), capacity_tokens);
}

absl::Status SeqPeModel::Forward(std::span<const BatchEntry> batch, std::vector<float>* logits) {
  const SeqPeConfig& c = weights_.config;
  const int64_t dim = c.dim;
  PositionTable& table = positions_->table();

  HR_ASSIGN_OR_RETURN(const BatchLayout layout, LayOutBatch(batch, c.vocab_size));
  const std::vector<int64_t>& offset = layout.offset;
  const int64_t n = layout.n_tokens;
  const int64_t n_logit_rows = layout.n_logit_rows;
  const int64_t max_end = layout.max_end;
  // input_add reads PE at every absolute position: OUT_OF_RANGE before any
  // work past the digit budget. attn_scalar positions are the attention's
  // business (absolute for SeqPeAttention, slot positions for the
  // long-context policies), which refuses them the same way.
  if (c.apply == PeApply::kInputAdd) HR_RETURN_IF_ERROR(table.Ensure(max_end));

  Grow(x_, n * dim);
  Grow(xn_, n * dim);
  Grow(q_, n * dim);
  Grow(k_, n * dim);
  Grow(v_, n * dim);
  Grow(attn_, n * dim);
  Grow(hidden_, n * c.ffn_dim);

  // Embeddings (+ PE(p) for input_add).
  for (size_t e = 0; e < batch.size(); ++e) {
    const int64_t first_pos = batch[e].sequence->length();
    for (size_t i = 0; i < batch[e].tokens.size(); ++i) {
      float* x = x_.data() + (offset[e] + i) * dim;
      std::memcpy(x, weights_.tok_embd.data + static_cast<int64_t>(batch[e].tokens[i]) * dim,
                  sizeof(float) * dim);
      if (c.apply == PeApply::kInputAdd) {
        const float* pe = table.Row(first_pos + static_cast<int64_t>(i));
        for (int64_t t = 0; t < dim; ++t) x[t] += pe[t];
      }
    }
  }

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const Gpt2BlockWeights& w = weights_.blocks[l];
    ApplyLayerNorm(w.ln1, c.layer_norm_eps, x_.data(), n, dim, xn_.data());
    ApplyLinearRows(w.attn_qkv, 0, dim, xn_.data(), n, q_.data());
    ApplyLinearRows(w.attn_qkv, dim, dim, xn_.data(), n, k_.data());
    ApplyLinearRows(w.attn_qkv, 2 * dim, dim, xn_.data(), n, v_.data());
    for (size_t e = 0; e < batch.size(); ++e) {
      const int64_t r = offset[e];
      const int64_t len = offset[e + 1] - r;
      HR_RETURN_IF_ERROR(batch[e].sequence->Forward(static_cast<int>(l), len, q_.data() + r * dim,
                                                    k_.data() + r * dim, v_.data() + r * dim,
                                                    attn_.data() + r * dim));
    }
    ApplyLinear(w.attn_out, attn_.data(), n, xn_.data());
    for (int64_t i = 0; i < n * dim; ++i) x_[i] += xn_[i];
    AddMlp(w, c.layer_norm_eps, x_.data(), n, dim, xn_.data(), hidden_.data(), q_.data());
  }
  for (const BatchEntry& entry : batch) {
    entry.sequence->Commit(static_cast<int64_t>(entry.tokens.size()));
  }

  // Gather the rows whose logits were asked for, then one output GEMM.
  Grow(last_, n_logit_rows * dim);
  GatherLogitRows(batch, layout, x_.data(), dim, last_.data());
  ApplyLayerNorm(weights_.output_norm, c.layer_norm_eps, last_.data(), n_logit_rows, dim,
                 last_.data());
  logits->resize(n_logit_rows * c.vocab_size);
  cpu::MatMulWt(last_.data(), n_logit_rows, dim, weights_.output.data, c.vocab_size,
                logits->data());
  return absl::OkStatus();
}

}  // namespace hr
