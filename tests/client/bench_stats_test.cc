// bench_stats: percentiles, the Poisson schedule and the per-request
// metrics, against values computed by hand.
#include "client/bench_stats.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace hr::client {
namespace {

TEST(PercentileTest, InterpolatesLinearlyBetweenClosestRanks) {
  const std::vector<double> v = {4.0, 1.0, 3.0, 2.0};  // unsorted on purpose
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 2.5);   // rank 1.5
  EXPECT_DOUBLE_EQ(Percentile(v, 90), 3.7);   // rank 2.7
  EXPECT_DOUBLE_EQ(Percentile(v, 99), 3.97);  // rank 2.97
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 4.0);
  EXPECT_DOUBLE_EQ(Percentile(std::vector<double>{7.0}, 99), 7.0);
  // numpy.percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 1000], [90, 99]): 100, 910.
  const std::vector<double> tail = {1000, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_DOUBLE_EQ(Percentile(tail, 90), 100.0);
  EXPECT_NEAR(Percentile(tail, 99), 910.0, 1e-9);
}

TEST(PercentileTest, DiesOnNoValues) {
  EXPECT_DEATH(Percentile(std::vector<double>{}, 50), "percentile of no values");
}

TEST(SummarizeTest, MeanMedianTail) {
  const std::vector<double> v = {0.5, 0.1, 0.3, 0.2, 0.4};
  const LatencySummary s = Summarize(v);
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.mean, 0.3);
  EXPECT_DOUBLE_EQ(s.median, 0.3);
  EXPECT_DOUBLE_EQ(s.p90, 0.46);   // rank 3.6: 0.4 + 0.6 * 0.1
  EXPECT_DOUBLE_EQ(s.p99, 0.496);  // rank 3.96
  EXPECT_DOUBLE_EQ(s.max, 0.5);
  const LatencySummary empty = Summarize(std::vector<double>{});
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.mean, 0.0);
  EXPECT_EQ(empty.p99, 0.0);
}

TEST(PoissonArrivalsTest, MeanRateAndExponentialGapsOverManyDraws) {
  constexpr int64_t kN = 200000;
  constexpr double kRate = 4.0;
  const std::vector<double> t = PoissonArrivals(kN, kRate, /*seed=*/42);
  ASSERT_EQ(t.size(), static_cast<size_t>(kN));
  EXPECT_EQ(t[0], 0.0);
  double sum = 0, sum_sq = 0;
  int64_t below_mean = 0;
  for (int64_t i = 1; i < kN; ++i) {
    const double gap = t[i] - t[i - 1];
    ASSERT_GE(gap, 0.0);
    sum += gap;
    sum_sq += gap * gap;
    below_mean += gap < 1.0 / kRate;
  }
  const double n = kN - 1;
  const double mean = sum / n;
  const double sd = std::sqrt(sum_sq / n - mean * mean);
  // Mean gap 1/rate (standard error 0.22% here); an exponential's standard
  // deviation equals its mean, and P(gap < mean) = 1 - 1/e.
  EXPECT_NEAR(mean, 1.0 / kRate, 0.01 / kRate);
  EXPECT_NEAR(sd, 1.0 / kRate, 0.02 / kRate);
  EXPECT_NEAR(below_mean / n, 1.0 - std::exp(-1.0), 0.005);
  EXPECT_NEAR(static_cast<double>(kN - 1) / t.back(), kRate, 0.01 * kRate);
}

TEST(PoissonArrivalsTest, ReproducibleBySeed) {
  EXPECT_EQ(PoissonArrivals(1000, 10.0, 7), PoissonArrivals(1000, 10.0, 7));
  EXPECT_NE(PoissonArrivals(1000, 10.0, 7), PoissonArrivals(1000, 10.0, 8));
  // The schedule scales with 1/rate for the same seed.
  const std::vector<double> slow = PoissonArrivals(100, 1.0, 3), fast = PoissonArrivals(100, 2.0, 3);
  for (size_t i = 0; i < slow.size(); ++i) EXPECT_NEAR(fast[i], slow[i] / 2, 1e-12);
}

TEST(PoissonArrivalsTest, InfiniteRateSendsAllAtOnce) {
  EXPECT_EQ(PoissonArrivals(5, std::numeric_limits<double>::infinity(), 1), std::vector<double>(5, 0.0));
  EXPECT_TRUE(PoissonArrivals(0, 1.0, 1).empty());
}

RequestRecord Record(double start, std::vector<double> deltas, std::vector<int32_t> tokens, double end,
                     int64_t prompt) {
  RequestRecord r;
  r.ok = true;
  r.start_s = start;
  r.delta_s = std::move(deltas);
  r.delta_tokens = std::move(tokens);
  r.end_s = end;
  r.prompt_tokens = prompt;
  return r;
}

TEST(ComputeReportTest, MetricsOfHandWorkedRequests) {
  std::vector<RequestRecord> records;
  // TTFT 1.0, E2E 2.0, 4 tokens in deltas of 1, 2, 1: TPOT (2 - 1) / 3, ITL 0.5, 0.5.
  records.push_back(Record(0.0, {1.0, 1.5, 2.0}, {1, 2, 1}, 2.0, 10));
  // TTFT 0.5, E2E 1.0, one token: no TPOT, no ITL.
  records.push_back(Record(1.0, {1.5}, {1}, 2.0, 6));
  RequestRecord failed;
  failed.error = "RESOURCE_EXHAUSTED: queue full";
  records.push_back(failed);

  const BenchReport r = ComputeReport(records, 4.0);
  EXPECT_EQ(r.completed, 2);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.input_tokens, 16);
  EXPECT_EQ(r.output_tokens, 5);
  EXPECT_DOUBLE_EQ(r.request_throughput, 0.5);
  EXPECT_DOUBLE_EQ(r.output_throughput, 1.25);
  EXPECT_DOUBLE_EQ(r.total_token_throughput, 21.0 / 4.0);
  EXPECT_EQ(r.ttft.count, 2);
  EXPECT_DOUBLE_EQ(r.ttft.mean, 0.75);
  EXPECT_DOUBLE_EQ(r.ttft.max, 1.0);
  EXPECT_EQ(r.tpot.count, 1);
  EXPECT_DOUBLE_EQ(r.tpot.mean, 1.0 / 3.0);
  EXPECT_EQ(r.itl.count, 2);
  EXPECT_DOUBLE_EQ(r.itl.mean, 0.5);
  EXPECT_EQ(r.e2e.count, 2);
  EXPECT_DOUBLE_EQ(r.e2e.mean, 1.5);
  EXPECT_DOUBLE_EQ(r.e2e.median, 1.5);
}

TEST(ComputeReportTest, RequestWithoutTokensCountsOnlyTowardLatency) {
  std::vector<RequestRecord> records = {Record(0.0, {}, {}, 0.25, 3)};
  const BenchReport r = ComputeReport(records, 1.0);
  EXPECT_EQ(r.completed, 1);
  EXPECT_EQ(r.ttft.count, 0);
  EXPECT_EQ(r.e2e.count, 1);
  EXPECT_DOUBLE_EQ(r.e2e.mean, 0.25);
}

}  // namespace
}  // namespace hr::client
