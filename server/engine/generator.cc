#include "server/engine/generator.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/common/status.h"
#include "server/engine/token_output.h"

namespace hr {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStopToken: return "stop_token";
    case FinishReason::kStopString: return "stop_string";
  }
  return "unknown";
}

absl::StatusOr<GenerateResult> Generate(CausalLm& model, const Tokenizer* tokenizer,
                                        std::span<const int32_t> prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token,
                                        SequenceAttention* sequence) {
  if (prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (options.max_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be > 0, got ", options.max_tokens));
  }
  if (options.prefill_chunk_tokens <= 0) {
    return absl::InvalidArgumentError("prefill_chunk_tokens must be > 0");
  }
  if (!options.stop_strings.empty() && tokenizer == nullptr) {
    return absl::InvalidArgumentError("stop_strings need a tokenizer");
  }
  HR_RETURN_IF_ERROR(ValidateSamplingParams(options.sampling));

  const int64_t vocab = model.vocab_size();
  std::unique_ptr<SequenceAttention> owned;
  SequenceAttention* seq = sequence;
  if (seq == nullptr) {
    owned = model.NewSequence(static_cast<int64_t>(prompt.size()) + options.max_tokens);
    if (owned == nullptr) {
      return absl::ResourceExhaustedError("the model cannot hold a sequence of the prompt and max_tokens");
    }
    seq = owned.get();
  }
  HR_CHECK(seq->length() == 0, "Generate needs an empty sequence");
  Sampler sampler(options.sampling);
  TokenOutput output(tokenizer, prompt, options);
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  std::vector<float> logits;
  GenerateResult result;

  // Prefill in chunks; only the last chunk's last position needs logits.
  auto t0 = std::chrono::steady_clock::now();
  for (size_t pos = 0; pos < prompt.size(); pos += options.prefill_chunk_tokens) {
    const size_t len = std::min<size_t>(options.prefill_chunk_tokens, prompt.size() - pos);
    BatchEntry entry{seq, prompt.subspan(pos, len), false};
    HR_RETURN_IF_ERROR(model.Forward({&entry, 1}, &logits));
  }
  result.prefill_seconds = SecondsSince(t0);

  t0 = std::chrono::steady_clock::now();
  for (int32_t step = 0; step < options.max_tokens; ++step) {
    const int32_t id = sampler.Sample({logits.data(), static_cast<size_t>(vocab)}, history);
    result.tokens.push_back(id);
    history.push_back(id);
    TokenOutput::Step out = output.Push(id);
    result.text += out.text;
    result.finish = out.reason;
    const bool keep_going = on_token ? on_token(id, out.text) : true;
    if (out.finished || !keep_going) break;

    BatchEntry entry{seq, {&result.tokens.back(), 1}, false};
    HR_RETURN_IF_ERROR(model.Forward({&entry, 1}, &logits));
  }
  result.decode_seconds = SecondsSince(t0);
  return result;
}

}  // namespace hr
