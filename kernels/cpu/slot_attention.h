// Attention of one query head over chunks placed at slots of its window
// (design.md §3): keys are stored rotated by their offset inside their chunk,
// so reading chunk j at slot s needs the query rotated by m − s·w only, one
// rotation per slot, never a key rotation.
#ifndef HEADROOM_KERNELS_CPU_SLOT_ATTENTION_H_
#define HEADROOM_KERNELS_CPU_SLOT_ATTENTION_H_

#include <cstdint>

#include "kernels/cpu/rope.h"

namespace hr::cpu {

struct SlotChunk {
  const float* keys;    // [n_keys][head_dim], local RoPE
  const float* values;  // [n_keys][head_dim]
  int64_t n_keys;       // keys of this chunk the query may read (causal in its own chunk)
  int64_t steps;        // query slot − chunk slot: the query is rotated by steps · chunk_size more
};

struct SlotAttentionParams {
  const float* q_local;         // [head_dim] query rotated by its own offset inside its chunk
  const SlotChunk* chunks;      // in slot order
  int64_t n_chunks;
  int64_t head_dim;
  float scale;                  // 1/sqrt(head_dim)
  const RopeStepTable* steps;   // rotations by multiples of the chunk size
  float* out;                   // [head_dim]
  float* scratch;               // [max n_keys + head_dim] floats
};

// Single-threaded; callers parallelise over (query, head).
void SlotAttention(const SlotAttentionParams& p);

// scores[t] = q · keys[t] for t < n (keys [n][d]).
void DotRows(const float* q, const float* keys, int64_t n, int64_t d, float* scores);

// out[c] += Σ_t weights[t] · rows[t][c] for c < d (rows [n][d]).
void AccumulateWeightedRows(const float* weights, const float* rows, int64_t n, int64_t d,
                            float* out);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_SLOT_ATTENTION_H_
