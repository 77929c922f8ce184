// Causal attention of a SeqPE model over a contiguous per-sequence KV cache,
// with the attn_scalar positional bias (seqpe_config.h):
//
//   logit[h, i, j] = q_h(i)·k_h(j) / sqrt(head_dim) + PositionBias(h, i, j)
//   PositionBias(h, i, j) = s · pq_h(i)·pk_h(j) / sqrt(head_dim)
//
// for the query at position i and every key j <= i. pq and pk are read from
// the model's position table at the keys' and the query's positions at every
// step, so a cached key keeps its bias in every later decode step. (The
// official code computes the bias from the current positions only, which
// during cached decoding is one constant per head, i.e. no positional bias
// at all: algorithms.md §2.6. Here cached decoding equals recomputation.)
// For input_add models the bias is absent and this is plain causal attention.
//
// Storage: K and V per layer, head-major [layer][head][position][head_dim],
// F32, allocated once for `capacity_tokens`. pk is not stored: the table
// holds it once per position for all sequences and layers.
//
// Positions beyond the encoder's digit budget: Forward returns OUT_OF_RANGE
// and stores nothing.
//
// Thread-safety: one thread at a time (sequence_attention.h); the table is
// shared and thread-safe.
// Ownership: borrows the table, which must outlive the sequence.
#ifndef HEADROOM_SERVER_MODEL_SEQPE_SEQPE_ATTENTION_H_
#define HEADROOM_SERVER_MODEL_SEQPE_SEQPE_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "server/longctx/seqpe/position_table.h"
#include "server/model/seqpe/seqpe_config.h"
#include "server/model/sequence_attention.h"

namespace hr {

// s · pq_h(i)·pk_h(j) / sqrt(head_dim) for query-position row `row_i` and
// key-position row `row_j` of the position table (attn_scalar only).
float PositionBias(const SeqPeConfig& config, const float* row_i, const float* row_j, int64_t head);

class SeqPeAttention : public SequenceAttention {
 public:
  SeqPeAttention(const SeqPeConfig& config, PositionTable* table, int64_t capacity_tokens);

  int64_t length() const override { return length_; }
  absl::Status Forward(int layer, int64_t n_tokens, const float* q, const float* k, const float* v,
                       float* out) override;
  void Commit(int64_t n_tokens) override;

 private:
  // bias_[(i·bias_heads + hb)·n_keys_max + j] for this Forward's queries,
  // computed at layer 0 and reused by every layer when it fits.
  void ComputeBias(int64_t n_tokens);

  const SeqPeConfig config_;
  PositionTable* const table_;
  const int64_t capacity_;
  int64_t length_ = 0;
  std::vector<float> keys_, values_;  // [n_layers, n_heads, capacity, head_dim]
  std::vector<float> bias_;
  bool bias_valid_ = false;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQPE_SEQPE_ATTENTION_H_
