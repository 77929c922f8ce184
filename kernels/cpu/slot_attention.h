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

// Attention of a block of queries of one head, one chunk at a time (design.md
// §3, "union of chunks"): the caller takes the union of the chunks its
// queries read and folds each chunk into every query that reads it, each
// query rotated by its own slot distance to that chunk (the slot differs per
// query), so a chunk's keys and values are read once per block instead of
// once per query (naive per-query gathering re-reads the whole window per
// query, head and layer). Each row keeps an online softmax; rows may visit
// their chunks in any order. The products are small matrix products (up to
// kSlotBlockRows rows at a time against the chunk's keys).
//
//   SlotQueryBlock b{...};
//   BeginSlotQueries(b, n);
//   for each chunk in the union: AttendSlotChunk(b, keys, {rows, steps, key_counts, m}, scratch);
//   FinishSlotQueries(b, n);
//
// Single-threaded per block; callers parallelise over heads (or sequences).
struct SlotQueryBlock {
  const float* q_local;         // row i at q_local + i·q_stride: [head_dim], local RoPE
  int64_t q_stride;             // floats
  int64_t head_dim;
  float scale;                  // 1/sqrt(head_dim)
  const RopeStepTable* steps;   // rotations by multiples of the chunk size
  float* out;                   // row i at out + i·out_stride: [head_dim]
  int64_t out_stride;           // floats
  float* row_max;               // [n] running maximum logit per row
  float* row_sum;               // [n] running softmax denominator per row
};

struct SlotChunkKeys {
  const float* keys;    // [n_keys][head_dim], local RoPE
  const float* values;  // [n_keys][head_dim]
  int64_t n_keys;
};

// The rows of a block that read one chunk.
struct SlotChunkReaders {
  const int32_t* rows;        // [m] indices into the block, each at most once
  const int32_t* steps;       // [m] row's slot − chunk's slot (rotation in chunk sizes)
  const int64_t* key_counts;  // [m] keys each row reads (<= n_keys; may be 0); null: all
  int64_t m;
};

inline constexpr int64_t kSlotBlockRows = 16;

// Scratch floats AttendSlotChunk needs for chunks of up to `max_keys` keys.
inline int64_t SlotChunkScratch(int64_t max_keys, int64_t head_dim) {
  return kSlotBlockRows * (head_dim + max_keys);
}

// Zeroes rows 0..n-1 of out and resets their softmax state.
void BeginSlotQueries(const SlotQueryBlock& b, int64_t n);

// Folds one chunk into the rows that read it.
void AttendSlotChunk(const SlotQueryBlock& b, const SlotChunkKeys& chunk,
                     const SlotChunkReaders& readers, float* scratch);

// Normalises rows 0..n-1 (a row that read no key stays zero).
void FinishSlotQueries(const SlotQueryBlock& b, int64_t n);

// scores[t] = q · keys[t] for t < n (keys [n][d]).
void DotRows(const float* q, const float* keys, int64_t n, int64_t d, float* scores);

// out[c] += Σ_t weights[t] · rows[t][c] for c < d (rows [n][d]).
void AccumulateWeightedRows(const float* weights, const float* rows, int64_t n, int64_t d,
                            float* out);

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_SLOT_ATTENTION_H_
