// A generation request as the engine runs it, and the sink its events go to.
//
// The api layer converts and validates a wire request into a RequestSpec
// (every field checked; design.md §5), the scheduler hands it to a worker,
// and the worker reports progress, tokens and the end through the request's
// RequestSink. Nothing here depends on gRPC or protobuf.
//
// Thread-safety: a Request is shared by the scheduler (which may Cancel it
// from any thread) and the one worker that runs it; only `cancel_code` is
// written after submission. Sink calls come from the worker thread, one at
// a time.
#ifndef HEADROOM_SERVER_ENGINE_REQUEST_H_
#define HEADROOM_SERVER_ENGINE_REQUEST_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/generator.h"
#include "server/longctx/long_context_params.h"

namespace hr {

enum class Priority : int { kLow = 0, kNormal = 1, kHigh = 2 };

// A validated request.
struct RequestSpec {
  std::string id;                   // unique among the server's live requests
  std::vector<int32_t> prompt;      // token ids, non-empty, inside the vocabulary
  GenerateOptions generation;       // sampling, max_tokens, stop criteria
  LongContextParams long_context;   // valid (LongContextParams::Validate)
  Priority priority = Priority::kNormal;
  int32_t logprobs = 0;             // 0: off; else top alternatives per token
  bool prompt_logprobs = false;     // stream log p(prompt[t] | prompt[..t)) for t >= 1
  absl::Time deadline = absl::InfiniteFuture();
};

struct TopLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

struct TokenLogprobs {
  int32_t id = 0;         // the sampled token
  float logprob = 0.0f;   // its log-probability under the model
  std::vector<TopLogprob> top;  // the `logprobs` most likely tokens, best first
};

// Tokens generated in one step (or coalesced across steps by the sink).
struct TokenEvent {
  std::vector<int32_t> ids;
  std::string text;                     // the text these tokens made final
  std::vector<TokenLogprobs> logprobs;  // one per id when requested
};

struct RequestUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens reused from the prefix cache
  int64_t generated_tokens = 0;
};

struct RequestTimings {
  double queue_seconds = 0.0;    // arrival to first scheduled step
  double prefill_seconds = 0.0;  // first scheduled step to the end of the prompt
  double ttft_seconds = 0.0;     // arrival to first generated token
  double decode_seconds = 0.0;   // first to last generated token
  double total_seconds = 0.0;    // arrival to finish
  int32_t preemptions = 0;
};

struct FinishEvent {
  FinishReason reason = FinishReason::kLength;
  RequestUsage usage;
  RequestTimings timings;
};

// Receives one request's events. Called from the worker thread that runs the
// request, one call at a time; implementations must not block (the api layer
// queues and coalesces). The last call is exactly one of OnFinish / OnError;
// nothing follows it.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  // `processed` prompt tokens of `total` are in the KV cache, `cached` of them
  // reused from the prefix cache.
  virtual void OnPrefillProgress(int64_t processed, int64_t total, int64_t cached) = 0;
  virtual void OnTokens(TokenEvent event) = 0;
  // For requests with prompt_logprobs: logprobs[i] is the log-probability of
  // prompt token first_position + i given the tokens before it. Calls cover
  // the prompt in order (from the first token not reused from the prefix
  // cache, position 0 excluded). Sinks of requests without it may ignore it.
  virtual void OnPromptLogprobs(int64_t first_position, std::vector<float> logprobs) {}
  virtual void OnFinish(const FinishEvent& finish) = 0;
  // CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (can never fit),
  // UNAVAILABLE (drain timed out) or INTERNAL.
  virtual void OnError(const absl::Status& status) = 0;
};

// A submitted request: the spec, its sink, and the cancellation flag.
class Request {
 public:
  Request(RequestSpec spec, std::shared_ptr<RequestSink> sink, absl::Time arrival)
      : spec_(std::move(spec)), sink_(std::move(sink)), arrival_(arrival) {}

  const RequestSpec& spec() const { return spec_; }
  RequestSink& sink() const { return *sink_; }
  absl::Time arrival() const { return arrival_; }

  // Asks the worker to stop the request with `code` (CANCELLED, or
  // UNAVAILABLE on drain) at its next step. The first call wins.
  void Cancel(absl::StatusCode code) {
    int expected = 0;
    cancel_code_.compare_exchange_strong(expected, static_cast<int>(code));
  }
  // OK while not cancelled.
  absl::StatusCode cancel_code() const {
    return static_cast<absl::StatusCode>(cancel_code_.load(std::memory_order_acquire));
  }

 private:
  const RequestSpec spec_;
  const std::shared_ptr<RequestSink> sink_;
  const absl::Time arrival_;
  std::atomic<int> cancel_code_{0};
};

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_REQUEST_H_
