// The server's Prometheus metrics (design.md §6), vLLM's set under the
// `headroom_` prefix plus the long-context metrics.
//
// Families (base units; `_total` counters, `_seconds` histograms):
//   headroom_worker_up{worker}                   gauge   1 serving, 0 once the worker lost its device
//   headroom_requests_running{worker}            gauge
//   headroom_requests_waiting{worker}            gauge
//   headroom_kv_blocks_used{worker}              gauge   blocks held by sequences or the prefix cache
//   headroom_kv_blocks_total{worker}             gauge   blocks of the default chunk size the budget holds
//   headroom_kv_cache_usage_ratio{worker}        gauge   used / budget bytes
//   headroom_prompt_tokens_total                 counter
//   headroom_generation_tokens_total             counter
//   headroom_request_success_total{finish_reason} counter length | stop_token | stop_string
//   headroom_request_failure_total{code}         counter canonical code name, e.g. INVALID_ARGUMENT
//   headroom_preemptions_total                   counter
//   headroom_time_to_first_token_seconds         histogram
//   headroom_inter_token_latency_seconds         histogram
//   headroom_request_queue_time_seconds          histogram
//   headroom_request_prefill_time_seconds        histogram
//   headroom_e2e_request_latency_seconds         histogram
//   headroom_request_prompt_tokens               histogram
//   headroom_request_generation_tokens           histogram
//   headroom_chunks_scored_total                 counter (query, head) x candidate chunk scores
//   headroom_chunks_selected_total               counter (query, head) x chunks attended
//   headroom_chunks_selected_per_step            histogram per forward step, all sequences
//   headroom_keys_attended_per_query_token       histogram keys one query head read (the window used)
//   headroom_context_length_tokens               histogram context of each sequence at each step
//   headroom_prefix_cache_queries_total          counter prompt chunks looked up
//   headroom_prefix_cache_hits_total             counter prompt chunks found
//   headroom_prefix_cache_cached_tokens_total    counter prompt tokens reused
//   headroom_step_duration_seconds               histogram one worker step (planning, forward, sampling, streaming)
//   headroom_forward_duration_seconds            histogram the forward pass of one worker step
//   headroom_step_tokens                         histogram tokens one worker step runs (decode + prompt)
//   headroom_seqpe_position_table_rows           gauge   positions the SeqPE encoder has encoded (0: no SeqPE model)
//   headroom_seqpe_position_table_bytes          gauge   memory the position table holds
//   headroom_seqpe_position_encode_seconds       gauge   wall time spent encoding them, in all
//
// Thread-safety: every method may be called from any thread (prometheus-cpp
// metrics are atomic). Ownership: owns its registry; the exposer (if any)
// holds a shared reference to it.
#ifndef HEADROOM_SERVER_METRICS_SERVER_METRICS_H_
#define HEADROOM_SERVER_METRICS_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
class Exposer;
}  // namespace prometheus

namespace hr {

class ServerMetrics {
 public:
  // `workers`: number of workers (one label value each).
  explicit ServerMetrics(int workers);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Serves /metrics over HTTP on `address` ("host:port"; port 0 picks one).
  // UNAVAILABLE when it cannot bind. Returns the bound port.
  absl::StatusOr<int> StartExposer(const std::string& address);

  // Per worker, set every step.
  void SetWorkerState(int worker, int64_t running, int64_t waiting, int64_t kv_blocks_used,
                      int64_t kv_blocks_total, double kv_usage_ratio);

  // A worker lost its device (false); every worker starts up (true).
  void SetWorkerUp(int worker, bool up);

  // A request finished normally (`finish_reason` as FinishReasonName).
  void RequestSucceeded(std::string_view finish_reason, int64_t prompt_tokens,
                        int64_t generated_tokens, double queue_s, double prefill_s,
                        double ttft_s, double e2e_s);
  // A request failed or was rejected with `code` (any layer).
  void RequestFailed(absl::StatusCode code);

  void AddPromptTokens(int64_t n);
  void AddGenerationTokens(int64_t n);
  void ObserveInterTokenLatency(double seconds);
  void AddPreemptions(int64_t n);
  // One worker step: its whole time, the forward pass's share of it (on a
  // GPU: the kernels, the wait for them and the logits' copy to the host),
  // and the tokens it ran (decode tokens and prompt pieces together). The
  // rest of a step is host work: planning, sampling, streaming tokens.
  void ObserveStep(double seconds, double forward_seconds, int64_t tokens);

  // Long-context counters of one forward step (all of a worker's sequences).
  void ObserveLongContextStep(int64_t chunks_scored, int64_t chunks_selected,
                              int64_t keys_attended, int64_t query_heads);
  void ObserveContextLength(int64_t tokens);
  void ObservePrefixLookup(int64_t chunks_queried, int64_t chunks_hit, int64_t cached_tokens);
  // The SeqPE position table's totals so far (one table per server).
  void SetPositionTable(int64_t rows, int64_t bytes, double encode_seconds);

  prometheus::Registry& registry();

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_METRICS_SERVER_METRICS_H_
