#include "server/metrics/server_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hr {
namespace {

using prometheus::Histogram;

// Latency buckets in seconds (vLLM's, extended to long prefills).
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
          2.5,   5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0};
}
Histogram::BucketBoundaries InterTokenBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
          0.1,   0.15,   0.2,   0.3,  0.4,   0.5,  0.75,  1.0,  2.5,  5.0};
}
// Powers of two from 1 to 2^20 (token counts, chunk counts).
Histogram::BucketBoundaries PowerOfTwoBuckets(int max_exponent) {
  Histogram::BucketBoundaries b;
  for (int e = 0; e <= max_exponent; ++e) b.push_back(static_cast<double>(1LL << e));
  return b;
}

}  // namespace

struct ServerMetrics::Families {
  prometheus::Family<prometheus::Gauge>* running;
  prometheus::Family<prometheus::Gauge>* waiting;
  prometheus::Family<prometheus::Gauge>* kv_used;
  prometheus::Family<prometheus::Gauge>* kv_total;
  prometheus::Family<prometheus::Gauge>* kv_usage;
  prometheus::Family<prometheus::Gauge>* worker_up;
  prometheus::Counter* prompt_tokens;
  prometheus::Counter* generation_tokens;
  prometheus::Family<prometheus::Counter>* success;
  prometheus::Family<prometheus::Counter>* failure;
  prometheus::Counter* preemptions;
  Histogram* ttft;
  Histogram* itl;
  Histogram* queue;
  Histogram* prefill;
  Histogram* e2e;
  Histogram* prompt_len;
  Histogram* generation_len;
  prometheus::Counter* chunks_scored;
  prometheus::Counter* chunks_selected;
  Histogram* chunks_selected_per_step;
  Histogram* keys_per_query;
  Histogram* context_length;
  prometheus::Counter* prefix_queries;
  prometheus::Counter* prefix_hits;
  prometheus::Counter* prefix_tokens;
  Histogram* step;
  Histogram* forward;
  Histogram* step_tokens;
  prometheus::Gauge* pe_rows;
  prometheus::Gauge* pe_bytes;
  prometheus::Gauge* pe_seconds;
  int workers;
};

ServerMetrics::ServerMetrics(int workers)
    : registry_(std::make_shared<prometheus::Registry>()), f_(std::make_unique<Families>()) {
  prometheus::Registry& r = *registry_;
  Families& f = *f_;
  f.workers = workers;
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(r);
  };
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
  };
  auto histogram = [&](const char* name, const char* help, Histogram::BucketBoundaries buckets) {
    return &prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, std::move(buckets));
  };
  f.running = gauge("headroom_requests_running", "Requests in a worker's running batch.");
  f.waiting = gauge("headroom_requests_waiting", "Requests queued on a worker, not yet admitted.");
  f.kv_used = gauge("headroom_kv_blocks_used",
                    "KV blocks held by sequences or the prefix cache.");
  f.kv_total = gauge("headroom_kv_blocks_total",
                     "KV blocks of the default chunk size the worker's budget holds.");
  f.kv_usage = gauge("headroom_kv_cache_usage_ratio",
                     "Fraction of the worker's KV budget held by live blocks.");
  f.worker_up = gauge("headroom_worker_up",
                      "1 while the worker serves; 0 once it lost its device (the server needs a restart).");
  for (int w = 0; w < workers; ++w) {
    const std::map<std::string, std::string> label{{"worker", std::to_string(w)}};
    f.worker_up->Add(label).Set(1.0);
    f.running->Add(label);
    f.waiting->Add(label);
    f.kv_used->Add(label);
    f.kv_total->Add(label);
    f.kv_usage->Add(label);
  }
  f.prompt_tokens = counter("headroom_prompt_tokens_total", "Prompt tokens processed.");
  f.generation_tokens = counter("headroom_generation_tokens_total", "Tokens generated.");
  f.success = &prometheus::BuildCounter()
                   .Name("headroom_request_success_total")
                   .Help("Requests finished, by finish reason.")
                   .Register(r);
  for (const char* reason : {"length", "stop_token", "stop_string"}) {
    f.success->Add({{"finish_reason", reason}});
  }
  f.failure = &prometheus::BuildCounter()
                   .Name("headroom_request_failure_total")
                   .Help("Requests rejected or failed, by gRPC status code.")
                   .Register(r);
  // Every code from the start, so rates work before the first failure.
  for (int code = 1; code <= 16; ++code) {
    f.failure->Add({{"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}});
  }
  f.preemptions = counter("headroom_preemptions_total",
                          "Sequences preempted (KV freed, recomputed later).");
  f.ttft = histogram("headroom_time_to_first_token_seconds",
                     "Arrival to first generated token.", LatencyBuckets());
  f.itl = histogram("headroom_inter_token_latency_seconds",
                    "Time between consecutive generated tokens of a request.", InterTokenBuckets());
  f.queue = histogram("headroom_request_queue_time_seconds",
                      "Arrival to the request's first scheduled step.", LatencyBuckets());
  f.prefill = histogram("headroom_request_prefill_time_seconds",
                        "First scheduled step to the end of the prompt.", LatencyBuckets());
  f.e2e = histogram("headroom_e2e_request_latency_seconds", "Arrival to finish.",
                    LatencyBuckets());
  f.prompt_len = histogram("headroom_request_prompt_tokens", "Prompt length of finished requests.",
                           PowerOfTwoBuckets(20));
  f.generation_len = histogram("headroom_request_generation_tokens",
                               "Generated tokens of finished requests.", PowerOfTwoBuckets(16));
  f.chunks_scored = counter("headroom_chunks_scored_total",
                            "Chunk scores computed: (query token, head) x candidate chunk.");
  f.chunks_selected = counter("headroom_chunks_selected_total",
                              "Chunks attended: (query token, head) x selected chunk.");
  f.chunks_selected_per_step = histogram("headroom_chunks_selected_per_step",
                                         "Chunks attended in one forward step, all sequences.",
                                         PowerOfTwoBuckets(30));
  f.keys_per_query = histogram("headroom_keys_attended_per_query_token",
                               "Keys one query head read: the attention window actually used.",
                               PowerOfTwoBuckets(20));
  f.context_length = histogram("headroom_context_length_tokens",
                               "Context length of each sequence at each step.",
                               PowerOfTwoBuckets(20));
  f.prefix_queries = counter("headroom_prefix_cache_queries_total",
                             "Complete prompt chunks looked up in the prefix cache.");
  f.prefix_hits = counter("headroom_prefix_cache_hits_total",
                          "Prompt chunks found in the prefix cache.");
  f.prefix_tokens = counter("headroom_prefix_cache_cached_tokens_total",
                            "Prompt tokens reused from the prefix cache.");
  f.step = histogram("headroom_step_duration_seconds",
                     "One worker step: batch planning, forward pass and sampling.", LatencyBuckets());
  f.forward = histogram("headroom_forward_duration_seconds",
                        "The forward pass of one worker step (on a GPU: its kernels, the wait for them and "
                        "the logits' copy to the host).",
                        LatencyBuckets());
  f.step_tokens = histogram("headroom_step_tokens", "Tokens one worker step runs (decode and prompt together).",
                            PowerOfTwoBuckets(16));
  f.pe_rows = &gauge("headroom_seqpe_position_table_rows",
                     "Positions the SeqPE position encoder has encoded (cached for reuse).")
                   ->Add({});
  f.pe_bytes = &gauge("headroom_seqpe_position_table_bytes",
                      "Memory the SeqPE position table holds.")
                    ->Add({});
  f.pe_seconds = &gauge("headroom_seqpe_position_encode_seconds",
                        "Wall time spent encoding SeqPE positions, in all.")
                      ->Add({});
}

ServerMetrics::~ServerMetrics() = default;

absl::StatusOr<int> ServerMetrics::StartExposer(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError(absl::StrCat("metrics exposer on ", address, " has no port"));
  return ports.front();
}

void ServerMetrics::SetWorkerState(int worker, int64_t running, int64_t waiting,
                                   int64_t kv_blocks_used, int64_t kv_blocks_total,
                                   double kv_usage_ratio) {
  const std::map<std::string, std::string> label{{"worker", std::to_string(worker)}};
  f_->running->Add(label).Set(static_cast<double>(running));
  f_->waiting->Add(label).Set(static_cast<double>(waiting));
  f_->kv_used->Add(label).Set(static_cast<double>(kv_blocks_used));
  f_->kv_total->Add(label).Set(static_cast<double>(kv_blocks_total));
  f_->kv_usage->Add(label).Set(kv_usage_ratio);
}

void ServerMetrics::SetWorkerUp(int worker, bool up) {
  f_->worker_up->Add({{"worker", std::to_string(worker)}}).Set(up ? 1.0 : 0.0);
}

void ServerMetrics::RequestSucceeded(std::string_view finish_reason, int64_t prompt_tokens,
                                     int64_t generated_tokens, double queue_s, double prefill_s,
                                     double ttft_s, double e2e_s) {
  f_->success->Add({{"finish_reason", std::string(finish_reason)}}).Increment();
  f_->prompt_len->Observe(static_cast<double>(prompt_tokens));
  f_->generation_len->Observe(static_cast<double>(generated_tokens));
  f_->queue->Observe(queue_s);
  f_->prefill->Observe(prefill_s);
  f_->ttft->Observe(ttft_s);
  f_->e2e->Observe(e2e_s);
}

void ServerMetrics::RequestFailed(absl::StatusCode code) {
  f_->failure->Add({{"code", absl::StatusCodeToString(code)}}).Increment();
}

void ServerMetrics::AddPromptTokens(int64_t n) { f_->prompt_tokens->Increment(static_cast<double>(n)); }
void ServerMetrics::AddGenerationTokens(int64_t n) {
  f_->generation_tokens->Increment(static_cast<double>(n));
}
void ServerMetrics::ObserveInterTokenLatency(double seconds) { f_->itl->Observe(seconds); }
void ServerMetrics::AddPreemptions(int64_t n) { f_->preemptions->Increment(static_cast<double>(n)); }
void ServerMetrics::ObserveStep(double seconds, double forward_seconds, int64_t tokens) {
  f_->step->Observe(seconds);
  f_->forward->Observe(forward_seconds);
  f_->step_tokens->Observe(static_cast<double>(tokens));
}

void ServerMetrics::ObserveLongContextStep(int64_t chunks_scored, int64_t chunks_selected,
                                           int64_t keys_attended, int64_t query_heads) {
  f_->chunks_scored->Increment(static_cast<double>(chunks_scored));
  f_->chunks_selected->Increment(static_cast<double>(chunks_selected));
  f_->chunks_selected_per_step->Observe(static_cast<double>(chunks_selected));
  if (query_heads > 0) {
    f_->keys_per_query->Observe(static_cast<double>(keys_attended) / static_cast<double>(query_heads));
  }
}

void ServerMetrics::ObserveContextLength(int64_t tokens) {
  f_->context_length->Observe(static_cast<double>(tokens));
}

void ServerMetrics::ObservePrefixLookup(int64_t chunks_queried, int64_t chunks_hit,
                                        int64_t cached_tokens) {
  f_->prefix_queries->Increment(static_cast<double>(chunks_queried));
  f_->prefix_hits->Increment(static_cast<double>(chunks_hit));
  f_->prefix_tokens->Increment(static_cast<double>(cached_tokens));
}

void ServerMetrics::SetPositionTable(int64_t rows, int64_t bytes, double encode_seconds) {
  f_->pe_rows->Set(static_cast<double>(rows));
  f_->pe_bytes->Set(static_cast<double>(bytes));
  f_->pe_seconds->Set(encode_seconds);
}

prometheus::Registry& ServerMetrics::registry() { return *registry_; }

}  // namespace hr
