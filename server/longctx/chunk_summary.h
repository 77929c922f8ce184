// Chunk summaries and scores (design.md §3; reference/algorithms.md §1.3).
//
// All inputs are one layer of one complete chunk of w tokens, F32:
//   keys, values  [w][head_dim] per KV head, keys rotated by their offset
//                 inside the chunk (local RoPE)
//   queries       [w][head_dim] per query head, local RoPE
// Scores take the raw (un-rotated) query, as the official code does.
#ifndef HEADROOM_SERVER_LONGCTX_CHUNK_SUMMARY_H_
#define HEADROOM_SERVER_LONGCTX_CHUNK_SUMMARY_H_

#include <cstdint>

#include "server/longctx/long_context_params.h"

namespace hr {

// The official code's representation for one query head:
//   o_t = Σ_s softmax_s(q_t·k_s/√d) v_s   (bidirectional inside the chunk)
//   q̄   = mean_t o_t
//   r   = Σ_s softmax_s(q̄·k_s/√d) k_s
// `scratch` holds w·w + w + head_dim floats. Writes r ([head_dim]) to `out`.
//
// q̄ lives in value space but is dotted with keys, so the result depends on
// the order of the key channels. GGUF stores Q/K permuted for adjacent-pair
// RoPE (llama.cpp's converter) while V is unchanged; with `adjacent_layout`
// q̄ is permuted the same way (q̄'[2i] = q̄[i], q̄'[2i+1] = q̄[i + d/2]), so a
// model gives the same summaries from its GGUF and its Hugging Face files,
// whose (NeoX) layout the official code uses.
void LongHeadsSummary(const float* queries, const float* keys, const float* values, int64_t w,
                      int64_t head_dim, bool adjacent_layout, float* scratch, float* out);

// Per-channel minimum then maximum of the keys: out [2][head_dim].
void BoundSummary(const float* keys, int64_t w, int64_t head_dim, float* out);

// Mean key: out [head_dim].
void MeanSummary(const float* keys, int64_t w, int64_t head_dim, float* out);

// Score of a chunk for a raw query, given the summary of the kind:
//   longheads, mean: q · summary;   bound: Σ_c max(q_c·max_c, q_c·min_c).
float ScoreChunk(SummaryKind kind, const float* q_raw, const float* summary, int64_t head_dim);

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_CHUNK_SUMMARY_H_
