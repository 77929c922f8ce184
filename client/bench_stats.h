// Statistics for the serving benchmark (`headroom bench`): percentiles, the
// Poisson arrival schedule, and the per-request metrics vLLM's
// benchmark_serving reports (TTFT, TPOT, ITL, end-to-end latency).
//
// Pure functions of their inputs (no clock, no I/O); thread-compatible.
// Times are in seconds throughout.
#ifndef HEADROOM_CLIENT_BENCH_STATS_H_
#define HEADROOM_CLIENT_BENCH_STATS_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace hr::client {

// The p-th percentile with linear interpolation between closest ranks
// (numpy.percentile's default): rank p/100 * (n - 1) in the sorted values.
// REQUIRES: !values.empty(), 0 <= p <= 100. `values` need not be sorted.
double Percentile(std::span<const double> values, double p);

struct LatencySummary {
  int64_t count = 0;  // samples; all fields below are 0 when it is 0
  double mean = 0.0;
  double median = 0.0;
  double p90 = 0.0;
  double p99 = 0.0;
  double max = 0.0;
};
LatencySummary Summarize(std::span<const double> values);

// Arrival offsets (seconds after the start) of `n` requests forming a
// Poisson process of `rate_per_s`: the first at 0, then independent
// exponential gaps of mean 1/rate_per_s, from a generator seeded with `seed`
// (same seed, same schedule, on every platform). rate_per_s = +infinity sends
// all at once (every offset 0). REQUIRES: n >= 0, rate_per_s > 0.
std::vector<double> PoissonArrivals(int64_t n, double rate_per_s, uint64_t seed);

// What the load generator observed of one request, in seconds since the
// benchmark's start.
struct RequestRecord {
  bool ok = false;
  std::string error;     // the status ("CODE: message") when !ok
  double start_s = 0.0;  // request sent
  double end_s = 0.0;    // stream ended
  // Arrival of every delta that carried at least one token, in order, and
  // how many tokens each carried.
  std::vector<double> delta_s;
  std::vector<int32_t> delta_tokens;
  int64_t prompt_tokens = 0;  // the server's usage count
};

struct BenchReport {
  int64_t completed = 0;
  int64_t failed = 0;
  double duration_s = 0.0;
  int64_t input_tokens = 0;   // over completed requests
  int64_t output_tokens = 0;  // over completed requests
  double request_throughput = 0.0;  // completed / duration
  double output_throughput = 0.0;   // output tokens / duration
  double total_token_throughput = 0.0;  // (input + output tokens) / duration
  // Over completed requests. TTFT: start to first token. TPOT: (E2E - TTFT)
  // / (output tokens - 1), for requests with more than one output token.
  // ITL: the gaps between consecutive token-carrying deltas (a delta may hold
  // several tokens when the server coalesces). E2E: start to end.
  LatencySummary ttft, tpot, itl, e2e;
};

// REQUIRES: duration_s > 0.
BenchReport ComputeReport(std::span<const RequestRecord> records, double duration_s);

}  // namespace hr::client

#endif  // HEADROOM_CLIENT_BENCH_STATS_H_
