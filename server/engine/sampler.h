// Token sampling from logits.
//
// Order of operations (as in Hugging Face / llama.cpp): repetition penalty on
// the tokens seen so far, then greedy argmax when temperature == 0; otherwise
// top-k, temperature, softmax, top-p (nucleus), min-p, and a draw from the
// remaining distribution with the sampler's own seeded generator, so the
// same seed and the same logits give the same tokens on every run.
//
// Thread-safety: a Sampler is per sequence, not thread-safe.
#ifndef HEADROOM_SERVER_ENGINE_SAMPLER_H_
#define HEADROOM_SERVER_ENGINE_SAMPLER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/common/splitmix64.h"

namespace hr {

struct SamplingParams {
  float temperature = 0.0f;         // 0: greedy (argmax); must be >= 0
  int32_t top_k = 0;                // 0: off; else keep the k most likely tokens
  float top_p = 1.0f;               // in (0, 1]; 1: off
  float min_p = 0.0f;               // in [0, 1); drop tokens with p < min_p · p_max
  float repetition_penalty = 1.0f;  // > 0; 1: off (CTRL-style: logit>0 ÷, else ×)
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the offending field.
absl::Status ValidateSamplingParams(const SamplingParams& params);

class Sampler {
 public:
  // REQUIRES: ValidateSamplingParams(params).ok()
  explicit Sampler(const SamplingParams& params);

  // Picks the next token. `logits` ([vocab]) is modified in place;
  // `history` holds the tokens the repetition penalty applies to.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history);

 private:
  SamplingParams params_;
  SplitMix64 rng_;
  std::vector<int32_t> order_;  // scratch: candidate ids
  std::vector<float> probs_;    // scratch
};

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_SAMPLER_H_
