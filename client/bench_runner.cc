#include "client/bench_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "server/common/splitmix64.h"
#include "server/common/status.h"

namespace hr::client {

namespace v1 = ::headroom::v1;

absl::StatusOr<std::vector<v1::GenerateRequest>> SyntheticRequests(const v1::ModelInfo& info,
                                                                   int64_t n, int32_t input_tokens,
                                                                   uint64_t seed,
                                                                   const v1::GenerateRequest& base) {
  if (n < 1) return absl::InvalidArgumentError("the number of prompts must be at least 1");
  if (input_tokens < 1) return absl::InvalidArgumentError("input_tokens must be at least 1");
  const int32_t vocab = info.vocab_size();
  if (vocab < 8) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary of ", vocab, " tokens is too small"));
  }
  SplitMix64 rng{seed};
  std::vector<v1::GenerateRequest> requests(static_cast<size_t>(n), base);
  for (v1::GenerateRequest& r : requests) {
    v1::TokenIds* ids = r.mutable_tokens();
    ids->add_ids(info.bos_id());
    while (ids->ids_size() < input_tokens) {
      const auto id = static_cast<int32_t>(3 + rng.Below(static_cast<size_t>(vocab - 3)));
      if (id != info.bos_id() && id != info.eos_id()) ids->add_ids(id);
    }
    r.mutable_stop()->set_ignore_eos(true);
  }
  return requests;
}

std::vector<v1::GenerateRequest> TextRequests(std::span<const std::string> prompts, int64_t n,
                                              const v1::GenerateRequest& base) {
  HR_CHECK(!prompts.empty(), "no prompts");
  std::vector<v1::GenerateRequest> requests(static_cast<size_t>(std::max<int64_t>(n, 0)), base);
  for (size_t i = 0; i < requests.size(); ++i) requests[i].set_text(prompts[i % prompts.size()]);
  return requests;
}

BenchRun RunBench(const HeadroomClient& client, std::span<const v1::GenerateRequest> requests,
                  const BenchOptions& options) {
  HR_CHECK(!requests.empty(), "no requests");
  using Clock = std::chrono::steady_clock;
  const auto n = static_cast<int64_t>(requests.size());
  const std::vector<double> arrivals = PoissonArrivals(n, options.request_rate, options.seed);
  const int64_t limit = options.concurrency > 0 ? options.concurrency : kMaxBenchConcurrency;
  const int64_t n_threads = std::min<int64_t>({n, limit, kMaxBenchConcurrency});

  BenchRun run;
  run.records.resize(requests.size());
  std::atomic<int64_t> next{0};
  absl::Mutex done_mu;
  int64_t done = 0;
  const Clock::time_point t0 = Clock::now();
  auto seconds_since_start = [t0] {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };

  auto worker = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      // The schedule's own pacing: wait for this request's arrival time.
      std::this_thread::sleep_until(
          t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals[i])));
      RequestRecord& rec = run.records[static_cast<size_t>(i)];
      GenerateCallbacks callbacks;
      callbacks.on_delta = [&](const v1::TokenDelta& delta) {
        if (delta.ids_size() == 0) return;
        rec.delta_s.push_back(seconds_since_start());
        rec.delta_tokens.push_back(delta.ids_size());
      };
      CallOptions call = CallOptions::WithTimeout(options.timeout);
      rec.start_s = seconds_since_start();
      auto result = client.Generate(requests[static_cast<size_t>(i)], callbacks, call);
      rec.end_s = seconds_since_start();
      rec.ok = result.ok();
      if (result.ok()) {
        rec.prompt_tokens = result->finished.usage().prompt_tokens();
      } else {
        rec.error = absl::StrCat(absl::StatusCodeToString(result.status().code()), ": ",
                                 std::string(result.status().message()));
      }
      absl::MutexLock lock(&done_mu);
      ++done;
      if (options.on_request_done) options.on_request_done(done, n);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n_threads));
  for (int64_t t = 0; t < n_threads; ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  for (const RequestRecord& rec : run.records) run.duration_s = std::max(run.duration_s, rec.end_s);
  run.duration_s = std::max(run.duration_s, 1e-9);
  return run;
}

namespace {

// Distinct error texts and how often each occurred, most frequent first.
std::vector<std::pair<std::string, int64_t>> ErrorCounts(const BenchRun& run) {
  std::map<std::string, int64_t> counts;
  for (const RequestRecord& rec : run.records) {
    if (!rec.ok) ++counts[rec.error];
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return sorted;
}

void AppendLatency(std::string* out, const std::string& title, const std::string& name,
                   const LatencySummary& s) {
  const std::string rule((50 - title.size()) / 2, '-');
  absl::StrAppend(out, rule, title, rule, "\n");
  absl::StrAppendFormat(out, "%-40s %10.2f\n", "Mean " + name + " (ms):", s.mean * 1e3);
  absl::StrAppendFormat(out, "%-40s %10.2f\n", "Median " + name + " (ms):", s.median * 1e3);
  absl::StrAppendFormat(out, "%-40s %10.2f\n", "P90 " + name + " (ms):", s.p90 * 1e3);
  absl::StrAppendFormat(out, "%-40s %10.2f\n", "P99 " + name + " (ms):", s.p99 * 1e3);
}

nlohmann::json LatencyJson(const LatencySummary& s) {
  return {{"count", s.count}, {"mean_ms", s.mean * 1e3}, {"median_ms", s.median * 1e3},
          {"p90_ms", s.p90 * 1e3}, {"p99_ms", s.p99 * 1e3}, {"max_ms", s.max * 1e3}};
}

}  // namespace

std::string FormatBenchReport(const BenchReport& r, const BenchRun& run) {
  std::string out = "============ Serving Benchmark Result ============\n";
  absl::StrAppendFormat(&out, "%-40s %10d\n", "Successful requests:", r.completed);
  absl::StrAppendFormat(&out, "%-40s %10d\n", "Failed requests:", r.failed);
  for (const auto& [error, count] : ErrorCounts(run)) {
    absl::StrAppendFormat(&out, "  %6d x %s\n", count, error);
  }
  absl::StrAppendFormat(&out, "%-40s %10.2f\n", "Benchmark duration (s):", r.duration_s);
  absl::StrAppendFormat(&out, "%-40s %10d\n", "Total input tokens:", r.input_tokens);
  absl::StrAppendFormat(&out, "%-40s %10d\n", "Total generated tokens:", r.output_tokens);
  absl::StrAppendFormat(&out, "%-40s %10.2f\n", "Request throughput (req/s):", r.request_throughput);
  absl::StrAppendFormat(&out, "%-40s %10.2f\n", "Output token throughput (tok/s):", r.output_throughput);
  absl::StrAppendFormat(&out, "%-40s %10.2f\n", "Total token throughput (tok/s):",
                        r.total_token_throughput);
  AppendLatency(&out, "Time to First Token", "TTFT", r.ttft);
  AppendLatency(&out, "Time per Output Token (excl. 1st token)", "TPOT", r.tpot);
  AppendLatency(&out, "Inter-token Latency", "ITL", r.itl);
  AppendLatency(&out, "End-to-end Latency", "E2E", r.e2e);
  out += std::string(50, '=') + "\n";
  return out;
}

std::string BenchReportJson(const BenchReport& r, const BenchRun& run) {
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [error, count] : ErrorCounts(run)) errors[error] = count;
  nlohmann::json j = {
      {"completed", r.completed},
      {"failed", r.failed},
      {"errors", errors},
      {"duration_s", r.duration_s},
      {"total_input_tokens", r.input_tokens},
      {"total_output_tokens", r.output_tokens},
      {"request_throughput", r.request_throughput},
      {"output_throughput", r.output_throughput},
      {"total_token_throughput", r.total_token_throughput},
      {"ttft", LatencyJson(r.ttft)},
      {"tpot", LatencyJson(r.tpot)},
      {"itl", LatencyJson(r.itl)},
      {"e2e_latency", LatencyJson(r.e2e)},
  };
  return j.dump(2) + "\n";
}

}  // namespace hr::client
