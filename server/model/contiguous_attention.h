// Plain causal attention over a contiguous per-sequence KV cache.
//
// Keys are stored rotated at their absolute positions (RoPE with the model's
// style, theta and linear scaling); values as they are. Storage is
// [layer][position][kv_head][head_dim], F32, allocated once for
// `capacity_tokens` tokens.
//
// Thread-safety: one thread at a time (see sequence_attention.h).
#ifndef HEADROOM_SERVER_MODEL_CONTIGUOUS_ATTENTION_H_
#define HEADROOM_SERVER_MODEL_CONTIGUOUS_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "server/model/config.h"
#include "server/model/sequence_attention.h"

namespace hr {

class ContiguousAttention : public SequenceAttention {
 public:
  ContiguousAttention(const ModelConfig& config, int64_t capacity_tokens);

  int64_t length() const override { return length_; }
  absl::Status Forward(int layer, int64_t n_tokens, const float* q, const float* k,
                       const float* v, float* out) override;
  void Commit(int64_t n_tokens) override;

 private:
  const ModelConfig config_;
  const int64_t capacity_;
  int64_t length_ = 0;
  std::vector<float> keys_, values_;  // [n_layers, capacity, n_kv_heads, head_dim]
  std::vector<float> q_rot_;          // scratch [n_tokens, n_heads, head_dim]
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_CONTIGUOUS_ATTENTION_H_
