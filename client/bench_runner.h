// The serving load generator behind `headroom bench` (after vLLM's
// benchmark_serving): sends requests on a Poisson schedule with at most N in
// flight, records what each stream delivered and when, and formats the
// report (bench_stats.h computes it).
//
// Thread-safety: RunBench uses its own threads and returns after they end;
// the client is shared by them (HeadroomClient is thread-safe).
#ifndef HEADROOM_CLIENT_BENCH_RUNNER_H_
#define HEADROOM_CLIENT_BENCH_RUNNER_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/bench_stats.h"
#include "client/headroom_client.h"
#include "headroom/v1/headroom.pb.h"

namespace hr::client {

// Threads (requests in flight) at most; `concurrency` 0 means this many.
inline constexpr int kMaxBenchConcurrency = 1024;

struct BenchOptions {
  // Requests in flight at most; 0 = no limit (up to kMaxBenchConcurrency).
  // A request whose arrival time has come waits for a free slot.
  int32_t concurrency = 0;
  // Poisson arrival rate in requests/s; +infinity sends all at once.
  double request_rate = std::numeric_limits<double>::infinity();
  uint64_t seed = 0;  // of the arrival schedule
  // Per-request deadline (InfiniteDuration: none).
  absl::Duration timeout = absl::InfiniteDuration();
  // Called after each request ends with (ended so far, total), from the
  // request's thread, serialised. May be empty.
  std::function<void(int64_t done, int64_t total)> on_request_done;
};

struct BenchRun {
  std::vector<RequestRecord> records;  // one per request, in request order
  double duration_s = 0.0;             // first send to last end
};

// `requests.size()` synthetic requests with token-id input: BOS then
// `input_tokens - 1` ids drawn uniformly from the vocabulary, skipping the
// ids below 3 (unknown, BOS, EOS in LLaMA vocabularies) and BOS/EOS; the
// rest copied from `base` (sampling, stop, long context...) with
// ignore_eos set so every request generates exactly its max_tokens.
// Same seed, same prompts. INVALID_ARGUMENT for n < 1, input_tokens < 1, or
// a vocabulary too small to draw from.
absl::StatusOr<std::vector<headroom::v1::GenerateRequest>> SyntheticRequests(
    const headroom::v1::ModelInfo& info, int64_t n, int32_t input_tokens, uint64_t seed,
    const headroom::v1::GenerateRequest& base);

// `n` text requests cycling through `prompts` (REQUIRES: non-empty), the
// rest copied from `base`.
std::vector<headroom::v1::GenerateRequest> TextRequests(std::span<const std::string> prompts,
                                                        int64_t n,
                                                        const headroom::v1::GenerateRequest& base);

// Sends every request and waits for all to end. Failed requests are records
// with ok = false (the benchmark itself does not fail because of them).
// REQUIRES: !requests.empty(), options.request_rate > 0.
BenchRun RunBench(const HeadroomClient& client,
                  std::span<const headroom::v1::GenerateRequest> requests,
                  const BenchOptions& options);

// vLLM-style result table (milliseconds for latencies) and the same as JSON.
std::string FormatBenchReport(const BenchReport& report, const BenchRun& run);
std::string BenchReportJson(const BenchReport& report, const BenchRun& run);

}  // namespace hr::client

#endif  // HEADROOM_CLIENT_BENCH_RUNNER_H_
