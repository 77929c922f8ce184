#include "client/bench_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "server/common/splitmix64.h"
#include "server/common/status.h"

namespace hr::client {
namespace {

// REQUIRES: sorted non-empty.
double SortedPercentile(const std::vector<double>& sorted, double p) {
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (rank - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

double Percentile(std::span<const double> values, double p) {
  HR_CHECK(!values.empty(), "percentile of no values");
  HR_CHECK(p >= 0.0 && p <= 100.0, "percentile outside [0, 100]");
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  return SortedPercentile(sorted, p);
}

LatencySummary Summarize(std::span<const double> values) {
  LatencySummary s;
  if (values.empty()) return s;
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  s.count = static_cast<int64_t>(sorted.size());
  s.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(s.count);
  s.median = SortedPercentile(sorted, 50.0);
  s.p90 = SortedPercentile(sorted, 90.0);
  s.p99 = SortedPercentile(sorted, 99.0);
  s.max = sorted.back();
  return s;
}

std::vector<double> PoissonArrivals(int64_t n, double rate_per_s, uint64_t seed) {
  HR_CHECK(n >= 0, "negative request count");
  HR_CHECK(rate_per_s > 0.0, "request rate must be positive");
  std::vector<double> arrivals(static_cast<size_t>(n), 0.0);
  if (std::isinf(rate_per_s)) return arrivals;
  SplitMix64 rng{seed};
  double t = 0.0;
  for (int64_t i = 1; i < n; ++i) {
    // Inverse CDF of Exp(rate); 1 - U is in (0, 1], so the log is finite.
    t += -std::log(1.0 - rng.Uniform()) / rate_per_s;
    arrivals[static_cast<size_t>(i)] = t;
  }
  return arrivals;
}

BenchReport ComputeReport(std::span<const RequestRecord> records, double duration_s) {
  HR_CHECK(duration_s > 0.0, "benchmark duration must be positive");
  BenchReport r;
  r.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const RequestRecord& rec : records) {
    if (!rec.ok) {
      ++r.failed;
      continue;
    }
    ++r.completed;
    r.input_tokens += rec.prompt_tokens;
    int64_t out = 0;
    for (int32_t n : rec.delta_tokens) out += n;
    r.output_tokens += out;
    const double latency = rec.end_s - rec.start_s;
    e2e.push_back(latency);
    if (rec.delta_s.empty()) continue;
    const double first = rec.delta_s.front() - rec.start_s;
    ttft.push_back(first);
    if (out > 1) tpot.push_back((latency - first) / static_cast<double>(out - 1));
    for (size_t i = 1; i < rec.delta_s.size(); ++i) itl.push_back(rec.delta_s[i] - rec.delta_s[i - 1]);
  }
  r.request_throughput = static_cast<double>(r.completed) / duration_s;
  r.output_throughput = static_cast<double>(r.output_tokens) / duration_s;
  r.total_token_throughput = static_cast<double>(r.input_tokens + r.output_tokens) / duration_s;
  r.ttft = Summarize(ttft);
  r.tpot = Summarize(tpot);
  r.itl = Summarize(itl);
  r.e2e = Summarize(e2e);
  return r;
}

}  // namespace hr::client
