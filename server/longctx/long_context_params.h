// Long-context attention parameters (design.md §3, reference/algorithms.md §1).
//
// Model-level defaults come from the server's flags; a request may override
// any of them (the server issue wires that). Validate() rejects invalid
// combinations with INVALID_ARGUMENT naming the parameter.
#ifndef HEADROOM_SERVER_LONGCTX_LONG_CONTEXT_PARAMS_H_
#define HEADROOM_SERVER_LONGCTX_LONG_CONTEXT_PARAMS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/model/config.h"

namespace hr {

// Which (chunk, slot) lists the queries attend to.
enum class AttentionPolicy {
  kFull,       // every chunk at its own index: standard causal attention
  kWindow,     // sink chunk 0 + the most recent chunks (StreamingLLM)
  kLongHeads,  // chunk 0, previous and own chunk + top-scoring earlier chunks
};

// How a completed chunk is summarised for scoring (all kinds are computed
// for every completed chunk; the parameter picks the one used).
enum class SummaryKind {
  kLongHeads,  // the official code's r_c, scored q_raw · r_c (per query head)
  kBound,      // per-channel min/max of the chunk's local-RoPE keys, Σ max(q·max, q·min)
  kMean,       // mean of the chunk's local-RoPE keys, q_raw · mean
};

// Under grouped-query attention: select per query head (faithful), or per
// KV head with scores summed over the heads of the group.
enum class GqaSelection { kPerQueryHead, kPerKvHead };

// In prefill: one selection per query token (exact), or one per query chunk
// shared by the chunk's queries in the same forward call (scores summed).
enum class PrefillSelection { kPerToken, kPerChunk };

struct LongContextParams {
  AttentionPolicy policy = AttentionPolicy::kLongHeads;
  int32_t chunk_size = 256;     // tokens per chunk (= KV block)
  int32_t atten_length = 2048;  // window per head; atten_length / chunk_size slots
  SummaryKind summary = SummaryKind::kBound;
  GqaSelection gqa = GqaSelection::kPerQueryHead;
  PrefillSelection prefill = PrefillSelection::kPerToken;

  int32_t slots() const { return atten_length / chunk_size; }

  // INVALID_ARGUMENT naming the parameter: chunk_size must be > 0,
  // atten_length a positive multiple of chunk_size with at least 3 slots
  // (sink, previous, own chunk), except for the `full` policy, which ignores
  // atten_length.
  absl::Status Validate() const;
};

// The model-derived defaults the server and headroom-generate start from:
// atten_length = `atten_length` when nonzero, else the model's trained context
// (2048 when the file declares none) capped at 4096; chunk_size =
// atten_length / 8 (at least 1); the other fields keep the struct defaults
// above. The result is not validated (a given atten_length may be invalid).
LongContextParams DefaultLongContextParams(const ModelConfig& config, int32_t atten_length = 0);

std::string_view PolicyName(AttentionPolicy p);
std::string_view SummaryKindName(SummaryKind k);
std::string_view GqaSelectionName(GqaSelection g);
std::string_view PrefillSelectionName(PrefillSelection p);
// Parse names ("full", "window", "longheads"; "longheads", "bound", "mean";
// "query_head", "kv_head"; "token", "chunk"). INVALID_ARGUMENT otherwise.
absl::StatusOr<AttentionPolicy> ParsePolicy(std::string_view name);
absl::StatusOr<SummaryKind> ParseSummaryKind(std::string_view name);
absl::StatusOr<GqaSelection> ParseGqaSelection(std::string_view name);
absl::StatusOr<PrefillSelection> ParsePrefillSelection(std::string_view name);

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_LONG_CONTEXT_PARAMS_H_
