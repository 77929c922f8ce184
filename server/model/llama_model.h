// The CPU forward pass of a LLaMA-family decoder.
//
// One Forward() call runs a batch: any mix of prefill runs (many tokens of one
// sequence) and decode steps (one token each of many sequences). All the
// batch's tokens go through each weight matrix in one BLAS GEMM; attention
// runs per sequence through its SequenceAttention.
//
// Thread-safety: a LlamaModel is not thread-safe (it owns scratch buffers);
// use one per worker. The weights it references are shared and immutable.
// Ownership: borrows `weights`, which must outlive the model.
#ifndef HEADROOM_SERVER_MODEL_LLAMA_MODEL_H_
#define HEADROOM_SERVER_MODEL_LLAMA_MODEL_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/model/causal_lm.h"
#include "server/model/sequence_attention.h"
#include "server/model/weights.h"

namespace hr {

class LlamaModel : public CausalLm {
 public:
  explicit LlamaModel(const LlamaWeights& weights);

  const ModelConfig& config() const { return weights_.config; }
  int64_t vocab_size() const override { return weights_.config.vocab_size; }

  // A new, empty sequence with contiguous causal attention that can hold
  // `capacity_tokens` tokens.
  std::unique_ptr<SequenceAttention> NewSequence(int64_t capacity_tokens) const override;

  // Runs the batch. `logits` receives, entry by entry, vocab_size floats per
  // requested position (all tokens of entries with all_logits, else the last
  // one). INVALID_ARGUMENT for token ids outside the vocabulary or an empty
  // entry; errors from attention (capacity) are passed on. On error no
  // sequence has committed the batch's tokens.
  absl::Status Forward(std::span<const BatchEntry> batch, std::vector<float>* logits) override;

 private:
  const LlamaWeights& weights_;
  // Scratch, [n_tokens, width] row-major; grown on demand.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, last_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_LLAMA_MODEL_H_
