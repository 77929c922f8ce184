// Turns one sequence's generated ids into streamed text and decides when it
// ends: end-of-sequence and stop ids, stop strings (text held back while it
// may still become one), and max_tokens. Shared by the single-sequence
// Generate() and the serving worker, so both stream identical text.
//
// Thread-safety: per sequence, not thread-safe.
#ifndef HEADROOM_SERVER_ENGINE_TOKEN_OUTPUT_H_
#define HEADROOM_SERVER_ENGINE_TOKEN_OUTPUT_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "server/engine/generator.h"
#include "server/engine/stop_strings.h"
#include "server/model/tokenizer.h"

namespace hr {

class TokenOutput {
 public:
  // `tokenizer` may be null (no text; stop strings then never match).
  // The prompt primes the detokenizer so the text continues it.
  TokenOutput(const Tokenizer* tokenizer, std::span<const int32_t> prompt,
              const GenerateOptions& options);

  struct Step {
    std::string text;  // text made final by this token (may be empty)
    bool finished = false;
    FinishReason reason = FinishReason::kLength;  // when finished
  };
  // REQUIRES: !finished() (the previous Push did not finish).
  Step Push(int32_t id);

  bool finished() const { return finished_; }
  int32_t generated() const { return generated_; }

 private:
  const Tokenizer* const tokenizer_;
  const GenerateOptions& options_;
  std::optional<StreamingDetokenizer> detok_;
  StopStringMatcher stops_;
  int32_t generated_ = 0;
  bool finished_ = false;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_TOKEN_OUTPUT_H_
