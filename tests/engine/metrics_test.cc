// ServerMetrics: the exposer serves valid Prometheus text with every family
// of design.md §6, and recorded values arrive on the page.
#include "server/metrics/server_metrics.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/util/http_get.h"
#include "tests/util/prometheus_text.h"

namespace hr {
namespace {

// Every family the design asks for (vLLM's set plus the long-context ones).
const char* const kFamilies[] = {
    "headroom_requests_running", "headroom_requests_waiting", "headroom_kv_blocks_used",
    "headroom_kv_blocks_total", "headroom_kv_cache_usage_ratio", "headroom_prompt_tokens_total",
    "headroom_generation_tokens_total", "headroom_request_success_total",
    "headroom_request_failure_total", "headroom_preemptions_total",
    "headroom_time_to_first_token_seconds", "headroom_inter_token_latency_seconds",
    "headroom_request_queue_time_seconds", "headroom_request_prefill_time_seconds",
    "headroom_e2e_request_latency_seconds", "headroom_request_prompt_tokens",
    "headroom_request_generation_tokens", "headroom_chunks_scored_total",
    "headroom_chunks_selected_total", "headroom_chunks_selected_per_step",
    "headroom_keys_attended_per_query_token", "headroom_context_length_tokens",
    "headroom_prefix_cache_queries_total", "headroom_prefix_cache_hits_total",
    "headroom_prefix_cache_cached_tokens_total", "headroom_step_duration_seconds",
    "headroom_forward_duration_seconds", "headroom_step_tokens"};

TEST(ServerMetricsTest, ServesEveryFamilyAsValidPrometheusText) {
  ServerMetrics metrics(2);
  auto port = metrics.StartExposer("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  metrics.SetWorkerState(1, 3, 4, 10, 100, 0.1);
  metrics.RequestSucceeded("stop_token", 100, 20, 0.01, 0.2, 0.25, 1.5);
  metrics.RequestFailed(absl::StatusCode::kInvalidArgument);
  metrics.RequestFailed(absl::StatusCode::kInvalidArgument);
  metrics.AddPromptTokens(100);
  metrics.ObserveLongContextStep(1000, 80, 4096, 8);
  metrics.ObservePrefixLookup(10, 7, 112);
  metrics.ObserveStep(0.004, 0.003, 70);
  metrics.ObserveStep(0.002, 0.001, 10);

  auto page = testing::HttpGet(absl::StrCat("http://127.0.0.1:", *port, "/metrics"));
  ASSERT_TRUE(page.ok()) << page.status();
  auto families = testing::ParsePrometheusText(*page);
  ASSERT_TRUE(families.ok()) << families.status();
  for (const char* name : kFamilies) {
    ASSERT_TRUE(families->contains(name)) << name;
    EXPECT_FALSE(families->at(name).help.empty()) << name;
  }
  EXPECT_EQ(testing::SumSamples(*families, "headroom_requests_waiting", "headroom_requests_waiting",
                                {{"worker", "1"}}),
            4);
  EXPECT_EQ(testing::SumSamples(*families, "headroom_request_failure_total",
                                "headroom_request_failure_total", {{"code", "INVALID_ARGUMENT"}}),
            2);
  EXPECT_EQ(testing::SumSamples(*families, "headroom_request_success_total",
                                "headroom_request_success_total", {{"finish_reason", "stop_token"}}),
            1);
  EXPECT_EQ(testing::SumSamples(*families, "headroom_keys_attended_per_query_token",
                                "headroom_keys_attended_per_query_token_sum"),
            512);
  EXPECT_EQ(testing::SumSamples(*families, "headroom_prefix_cache_hits_total",
                                "headroom_prefix_cache_hits_total"),
            7);
  EXPECT_EQ(testing::SumSamples(*families, "headroom_step_tokens", "headroom_step_tokens_sum"), 80);
  EXPECT_EQ(testing::SumSamples(*families, "headroom_forward_duration_seconds",
                                "headroom_forward_duration_seconds_count"),
            2);
  EXPECT_NEAR(testing::SumSamples(*families, "headroom_forward_duration_seconds",
                                  "headroom_forward_duration_seconds_sum"),
              0.004, 1e-12);
}

TEST(PrometheusTextTest, RejectsMalformedPages) {
  EXPECT_TRUE(testing::ParsePrometheusText("# TYPE a counter\na 1\n").ok());
  EXPECT_FALSE(testing::ParsePrometheusText("a 1\n").ok());                      // undeclared
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE a counter\na{x=1} 1\n").ok());  // unquoted
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE a counter\na -1\n").ok());    // negative
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE a gauge\na one\n").ok());     // value
  EXPECT_FALSE(testing::ParsePrometheusText(
                   "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                   "h_sum 1\nh_count 1\n")
                   .ok());  // not cumulative
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\n"
                                            "h_sum 1\nh_count 1\n")
                   .ok());  // +Inf != count
}

}  // namespace
}  // namespace hr
