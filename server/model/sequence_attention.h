// The attention seam between the forward pass and the KV cache.
//
// The forward pass computes raw (pre-RoPE) queries, keys and values for a run
// of new tokens of one sequence and hands them, layer by layer, to that
// sequence's SequenceAttention, which owns the sequence's K/V storage, decides
// how positions are encoded (RoPE placement) and which keys each query reads.
// The contiguous causal implementation (contiguous_attention.h) is the plain
// one; the long-context policies (full / window / LongHeads over a paged
// cache, design.md §3) implement the same interface.
//
// Thread-safety: a SequenceAttention belongs to one sequence and is used by one
// thread at a time (the worker that owns the sequence).
#ifndef HEADROOM_SERVER_MODEL_SEQUENCE_ATTENTION_H_
#define HEADROOM_SERVER_MODEL_SEQUENCE_ATTENTION_H_

#include <cstdint>

#include "absl/status/status.h"

namespace hr {

class SequenceAttention {
 public:
  virtual ~SequenceAttention() = default;

  // Tokens whose K/V are stored (committed) for every layer.
  virtual int64_t length() const = 0;

  // Stores K/V of `n_tokens` new tokens at positions length() ..
  // length() + n_tokens - 1 for `layer` and writes the attention output of
  // their queries (each query attends causally, itself included).
  //   q:   [n_tokens, n_heads * head_dim]    raw, before RoPE
  //   k,v: [n_tokens, n_kv_heads * head_dim] raw, before RoPE
  //   out: [n_tokens, n_heads * head_dim]
  // Called for layers 0 .. n_layers-1 in order, then Commit(n_tokens).
  // RESOURCE_EXHAUSTED when the sequence would exceed its capacity.
  virtual absl::Status Forward(int layer, int64_t n_tokens, const float* q, const float* k,
                               const float* v, float* out) = 0;

  // Makes the `n_tokens` tokens passed to Forward part of length().
  virtual void Commit(int64_t n_tokens) = 0;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQUENCE_ATTENTION_H_
