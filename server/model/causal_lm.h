// The forward pass of a causal language model, whatever its family (LLaMA
// with RoPE, GPT-2 with SeqPE): the seam between the engine (generation
// loop, worker) and one model instance.
//
// One Forward() call runs a batch: any mix of prefill runs (many tokens of
// one sequence) and decode steps (one token each of many sequences); each
// entry's attention runs through its SequenceAttention at positions
// sequence->length() .. length() + n - 1.
//
// Thread-safety: an instance is not thread-safe (it owns scratch buffers);
// use one per worker. Ownership: implementations borrow their weights.
#ifndef HEADROOM_SERVER_MODEL_CAUSAL_LM_H_
#define HEADROOM_SERVER_MODEL_CAUSAL_LM_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/model/sequence_attention.h"

namespace hr {

struct BatchEntry {
  SequenceAttention* sequence;     // receives this run's K/V (not owned)
  std::span<const int32_t> tokens; // new tokens, at positions sequence->length()...
  bool all_logits = false;         // logits for every token, else only the last
};

class CausalLm {
 public:
  virtual ~CausalLm() = default;

  virtual int64_t vocab_size() const = 0;

  // A new, empty sequence with contiguous causal attention (the model's own
  // position scheme) that can hold `capacity_tokens` tokens; null when the
  // model's device cannot hold it.
  virtual std::unique_ptr<SequenceAttention> NewSequence(int64_t capacity_tokens) const = 0;

  // Runs the batch. `logits` receives, entry by entry, vocab_size() floats
  // per requested position (every token of entries with all_logits, else
  // the last one). INVALID_ARGUMENT for token ids outside the vocabulary or
  // an empty entry; errors from attention (capacity, positions) are passed
  // on. On error no sequence has committed the batch's tokens.
  virtual absl::Status Forward(std::span<const BatchEntry> batch, std::vector<float>* logits) = 0;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_CAUSAL_LM_H_
