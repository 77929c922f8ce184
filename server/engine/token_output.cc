#include "server/engine/token_output.h"

#include <algorithm>

#include "server/common/status.h"

namespace hr {

TokenOutput::TokenOutput(const Tokenizer* tokenizer, std::span<const int32_t> prompt,
                         const GenerateOptions& options)
    : tokenizer_(tokenizer), options_(options), stops_(options.stop_strings) {
  if (tokenizer_ != nullptr) {
    detok_.emplace(*tokenizer_);
    for (int32_t id : prompt) detok_->Push(id);
  }
}

TokenOutput::Step TokenOutput::Push(int32_t id) {
  HR_CHECK(!finished_, "TokenOutput::Push after the end");
  ++generated_;
  const bool stop_token =
      (options_.stop_at_eos && tokenizer_ != nullptr && id == tokenizer_->eos_id()) ||
      std::find(options_.stop_token_ids.begin(), options_.stop_token_ids.end(), id) !=
          options_.stop_token_ids.end();
  Step step;
  if (detok_ && !stop_token) step.text = stops_.Push(detok_->Push(id));
  if (stop_token) {
    if (detok_) step.text = stops_.Push(detok_->Flush()) + stops_.Flush();
    step.reason = FinishReason::kStopToken;
    step.finished = true;
  } else if (stops_.stopped()) {
    step.reason = FinishReason::kStopString;
    step.finished = true;
  } else if (generated_ >= options_.max_tokens) {
    if (detok_) {
      step.text += stops_.Push(detok_->Flush());
      step.text += stops_.Flush();
    }
    step.reason = stops_.stopped() ? FinishReason::kStopString : FinishReason::kLength;
    step.finished = true;
  }
  finished_ = step.finished;
  return step;
}

}  // namespace hr
