// Causal grouped-query attention over a contiguous KV cache (CPU).
//
// The long-context issue generalises this to attention over (block, slot)
// lists (design.md §3); this kernel is the plain contiguous case.
#ifndef HEADROOM_KERNELS_CPU_ATTENTION_H_
#define HEADROOM_KERNELS_CPU_ATTENTION_H_

#include <cstdint>

namespace hr::cpu {

struct CausalAttentionParams {
  const float* q;       // [n_queries, n_heads, head_dim], RoPE applied
  const float* k;       // [>= first_query_pos + n_queries, n_kv_heads, head_dim], RoPE applied
  const float* v;       // [same, n_kv_heads, head_dim]
  float* out;           // [n_queries, n_heads, head_dim]
  int64_t n_queries;
  int64_t first_query_pos;  // query i sits at position first_query_pos + i and
                            // reads keys 0 .. first_query_pos + i (itself included)
  int64_t n_heads;
  int64_t n_kv_heads;   // REQUIRES: n_heads % n_kv_heads == 0
  int64_t head_dim;
  float scale;          // usually 1/sqrt(head_dim)
};

enum class KernelStatus { kOk, kInvalidShape };

// Multithreaded over (query, head).
KernelStatus CausalAttention(const CausalAttentionParams& p);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_ATTENTION_H_
