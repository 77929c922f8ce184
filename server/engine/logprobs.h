// Log-probabilities reported with generated tokens (opt-in per request).
//
// They describe the model's own distribution: log_softmax of the raw logits,
// before repetition penalty, temperature or truncation (as vLLM's default).
#ifndef HEADROOM_SERVER_ENGINE_LOGPROBS_H_
#define HEADROOM_SERVER_ENGINE_LOGPROBS_H_

#include <cstdint>
#include <span>

#include "server/engine/request.h"

namespace hr {

// The log-probability of `sampled` and the `top` most likely tokens (best
// first; ties: lower id first). REQUIRES: 0 <= sampled < logits.size().
TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t sampled, int32_t top);

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_LOGPROBS_H_
