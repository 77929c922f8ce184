// Single-sequence generation: chunked prefill, then sample/decode until a
// stop criterion. Used by the command-line runner and the tests; the serving
// scheduler batches many sequences through the same CausalLm::Forward.
//
// Thread-safety: Generate() uses `model` exclusively for its duration.
#ifndef HEADROOM_SERVER_ENGINE_GENERATOR_H_
#define HEADROOM_SERVER_ENGINE_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/sampler.h"
#include "server/model/causal_lm.h"
#include "server/model/tokenizer.h"

namespace hr {

struct GenerateOptions {
  SamplingParams sampling;
  int32_t max_tokens = 128;               // > 0: generated tokens at most
  std::vector<int32_t> stop_token_ids;    // generation ends on any of these
  bool stop_at_eos = true;                // the tokenizer's EOS ends generation
  std::vector<std::string> stop_strings;  // text ends before the first match
  int32_t prefill_chunk_tokens = 512;     // prompt tokens per forward call
};

enum class FinishReason { kLength, kStopToken, kStopString };
std::string_view FinishReasonName(FinishReason reason);

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (a stop token included)
  std::string text;             // streamed text (stop string excluded)
  FinishReason finish = FinishReason::kLength;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
};

// Called once per generated token with the text that became final with it
// (may be empty). Returning false stops generation (treated as kLength).
using TokenCallback = std::function<bool(int32_t id, std::string_view text)>;

// INVALID_ARGUMENT for an empty prompt or bad options. `tokenizer` may be
// null when no text is wanted (stop strings then need a tokenizer).
// `sequence` receives the K/V (e.g. a PagedSequence with a long-context
// policy); when null, a contiguous causal sequence of the needed size is used.
// REQUIRES: sequence->length() == 0.
absl::StatusOr<GenerateResult> Generate(CausalLm& model, const Tokenizer* tokenizer,
                                        std::span<const int32_t> prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token = nullptr,
                                        SequenceAttention* sequence = nullptr);

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_GENERATOR_H_
