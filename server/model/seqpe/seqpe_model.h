// The CPU forward pass of a GPT-2-style decoder with SeqPE positions
// (seqpe_config.h): token embedding (+ PE(p) for input_add), n_layers
// pre-LN blocks (LayerNorm, attention with the attn_scalar bias, GELU MLP,
// biases everywhere), final LayerNorm, output head (tied to the embedding by
// default).
//
// Mirrors LlamaModel (server/model/llama_model.h): one Forward() call runs a
// batch of BatchEntry (prefill runs and decode steps of several sequences);
// every weight matrix sees all the batch's tokens in one GEMM; attention runs
// per sequence through its SequenceAttention (SeqPeAttention from
// NewSequence(), or a long-context policy over the same interface).
// Positions are those of the sequence: length() .. length() + n - 1.
//
// Errors: INVALID_ARGUMENT for token ids outside the vocabulary or an empty
// entry; OUT_OF_RANGE when a position lies beyond the position encoder's
// digit budget (the message names the position and the budget): for
// input_add any absolute position, for attn_scalar any position the
// sequence's attention reads (absolute for NewSequence(); slot positions,
// at most atten_length - 1, under the long-context policies of
// server/longctx/seqpe/seqpe_paged_sequence.h); errors from attention
// (capacity) are passed on. On error no sequence commits the batch.
//
// Thread-safety: a SeqPeModel is not thread-safe (it owns scratch buffers);
// use one per worker. Workers over the same weights may share one
// SeqPePositions (thread-safe), so every position is encoded once.
// Ownership: borrows `weights`, which must outlive the model.
#ifndef HEADROOM_SERVER_MODEL_SEQPE_SEQPE_MODEL_H_
#define HEADROOM_SERVER_MODEL_SEQPE_SEQPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/model/causal_lm.h"
#include "server/model/seqpe/seqpe_positions.h"
#include "server/model/seqpe/seqpe_weights.h"
#include "server/model/sequence_attention.h"

namespace hr {

class SeqPeModel : public CausalLm {
 public:
  // `positions` may be shared with other models over the same weights; null
  // creates one.
  explicit SeqPeModel(const SeqPeWeights& weights,
                      std::shared_ptr<SeqPePositions> positions = nullptr);

  const SeqPeConfig& config() const { return weights_.config; }
  int64_t vocab_size() const override { return weights_.config.vocab_size; }
  const std::shared_ptr<SeqPePositions>& positions() const { return positions_; }

  // A new, empty sequence with contiguous causal attention (and the
  // attn_scalar bias) that can hold `capacity_tokens` tokens.
  std::unique_ptr<SequenceAttention> NewSequence(int64_t capacity_tokens) const override;

  // Runs the batch. `logits` receives, entry by entry, vocab_size floats per
  // requested position (every token of entries with all_logits, else the
  // last one).
  absl::Status Forward(std::span<const BatchEntry> batch, std::vector<float>* logits) override;

 private:
  const SeqPeWeights& weights_;
  std::shared_ptr<SeqPePositions> positions_;
  // Scratch, [n_tokens, width] row-major; grown on demand.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, hidden_, last_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQPE_SEQPE_MODEL_H_
