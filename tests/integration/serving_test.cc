// The real headroom-server on loopback under load: 64 concurrent streams give
// the same outputs as the same requests one at a time; a cancelled stream's
// KV blocks are freed (seen on /metrics); deadlines and the queue limit end
// requests with their codes while the server keeps serving; a follow-up
// question on the same document reuses the prefix cache; the metrics page is
// valid Prometheus text with every family of design.md §6.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "headroom/v1/headroom.grpc.pb.h"
#include "tests/test_util.h"
#include "tests/util/http_get.h"
#include "tests/util/prometheus_text.h"
#include "tests/util/server_process.h"

namespace hr {
namespace {

namespace pb = ::headroom::v1;

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  pb::Finished finished;
  std::vector<float> prompt_logprobs;
  int64_t prompt_first = -1;
  int deltas = 0;
  int progress_events = 0;
};

class ServingTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {testing::BuildDir() + "/server/headroom-server",
                                     "--model", testing::SharedDir() + "/models/stories260K.gguf",
                                     "--grpc_address", "127.0.0.1:0",
                                     "--metrics_address", "127.0.0.1:0",
                                     "--backend", "cpu",  // several workers, CPU references
                                     "--threads_per_worker", "1",
                                     "--chunk_size", "16",
                                     "--atten_length", "64"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto server = testing::ServerProcess::Start({.argv = argv});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
    stub_ = pb::Headroom::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) {
      auto code = server_->Stop();
      EXPECT_TRUE(code.ok() && *code == 0) << (code.ok() ? absl::StrCat("exit ", *code)
                                                         : code.status().ToString());
    }
  }

  static pb::GenerateRequest Request(const std::string& text, int max_tokens) {
    pb::GenerateRequest r;
    r.set_text(text);
    r.mutable_stop()->set_max_tokens(max_tokens);
    return r;
  }

  // One streaming call to its end. `context` may carry a deadline; when
  // `cancel_after_deltas` > 0 the client cancels after that many deltas.
  StreamResult Generate(const pb::GenerateRequest& request, absl::Duration timeout = absl::Seconds(120),
                        int cancel_after_deltas = 0) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    StreamResult result;
    auto reader = stub_->Generate(&context, request);
    pb::GenerateResponse response;
    while (reader->Read(&response)) {
      if (response.has_progress()) ++result.progress_events;
      if (response.has_delta()) {
        ++result.deltas;
        result.ids.insert(result.ids.end(), response.delta().ids().begin(), response.delta().ids().end());
        result.text += response.delta().text();
        if (cancel_after_deltas > 0 && result.deltas == cancel_after_deltas) context.TryCancel();
      }
      if (response.has_finished()) result.finished = response.finished();
      if (response.has_prompt_logprobs()) {
        const auto& p = response.prompt_logprobs();
        if (result.prompt_first < 0) result.prompt_first = p.first_position();
        EXPECT_EQ(p.first_position(),
                  result.prompt_first + static_cast<int64_t>(result.prompt_logprobs.size()));
        result.prompt_logprobs.insert(result.prompt_logprobs.end(), p.logprobs().begin(),
                                      p.logprobs().end());
      }
    }
    result.status = reader->Finish();
    return result;
  }

  std::map<std::string, testing::MetricFamily> Metrics() {
    auto page = testing::HttpGet(absl::StrCat("http://", server_->metrics_address(), "/metrics"));
    EXPECT_TRUE(page.ok()) << page.status();
    auto families = testing::ParsePrometheusText(page.ok() ? *page : "");
    EXPECT_TRUE(families.ok()) << families.status();
    return families.ok() ? *families : std::map<std::string, testing::MetricFamily>{};
  }

  double Metric(const std::string& family, const std::string& sample = "",
                const std::map<std::string, std::string>& labels = {}) {
    return testing::SumSamples(Metrics(), family, sample.empty() ? family : sample, labels);
  }

  // Waits (bounded) until a gauge reaches `want`: the worker publishes its
  // state after each step, which may come just after the client saw the end.
  bool GaugeReaches(const std::string& family, double want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (Metric(family) == want) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  static std::string Prompt(int i) {
    static const char* kStarts[] = {"Once upon a time, there was a little girl named Lily.",
                                    "Tom had a big red ball. He liked to play with it.",
                                    "The sun was shining and the birds were singing.",
                                    "One day, a cat found a box in the garden.",
                                    "Sam and his dog went to the park to play."};
    std::string p = kStarts[i % 5];
    for (int r = 0; r < i % 4; ++r) p += " They were very happy and laughed together.";
    return p;
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Headroom::Stub> stub_;
};

TEST_F(ServingTest, SixtyFourConcurrentStreamsMatchSequentialOutputs) {
  StartServer({"--workers", "2", "--max_running", "32", "--step_tokens", "128"});
  constexpr int kStreams = 64;
  std::vector<pb::GenerateRequest> requests;
  for (int i = 0; i < kStreams; ++i) {
    pb::GenerateRequest r = Request(Prompt(i), 12 + i % 13);
    static const pb::AttentionPolicy kPolicies[] = {pb::ATTENTION_POLICY_LONGHEADS,
                                                    pb::ATTENTION_POLICY_FULL,
                                                    pb::ATTENTION_POLICY_WINDOW};
    r.mutable_long_context()->set_policy(kPolicies[i % 3]);
    requests.push_back(r);
  }
  std::vector<StreamResult> sequential;
  for (const auto& r : requests) sequential.push_back(Generate(r));

  std::vector<StreamResult> concurrent(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] { concurrent[i] = Generate(requests[i]); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(sequential[i].status.ok()) << sequential[i].status.error_message();
    ASSERT_TRUE(concurrent[i].status.ok()) << concurrent[i].status.error_message();
    EXPECT_FALSE(sequential[i].ids.empty());
    EXPECT_EQ(concurrent[i].ids, sequential[i].ids) << "stream " << i;
    EXPECT_EQ(concurrent[i].text, sequential[i].text) << "stream " << i;
    EXPECT_EQ(concurrent[i].finished.usage().generated_tokens(),
              static_cast<int64_t>(concurrent[i].ids.size()));
  }
  EXPECT_TRUE(GaugeReaches("headroom_requests_running", 0));
  EXPECT_EQ(Metric("headroom_request_success_total"), 2 * kStreams);
}

TEST_F(ServingTest, CancelledStreamFreesItsBlocks) {
  StartServer({"--prefix_cache=false"});
  pb::GenerateRequest r = Request(Prompt(3), 4000);
  r.mutable_stop()->set_ignore_eos(true);
  const StreamResult cancelled = Generate(r, absl::Seconds(120), /*cancel_after_deltas=*/3);
  EXPECT_EQ(cancelled.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(GaugeReaches("headroom_kv_blocks_used", 0));
  EXPECT_TRUE(GaugeReaches("headroom_requests_running", 0));
  // And it still serves.
  EXPECT_TRUE(Generate(Request(Prompt(1), 5)).status.ok());
}

TEST_F(ServingTest, DeadlineExceededStopsTheWork) {
  StartServer({"--prefix_cache=false"});
  pb::GenerateRequest r = Request(Prompt(2), 4000);
  r.mutable_stop()->set_ignore_eos(true);
  const StreamResult result = Generate(r, absl::Milliseconds(300));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(GaugeReaches("headroom_kv_blocks_used", 0));
  EXPECT_TRUE(Generate(Request(Prompt(1), 5)).status.ok());
}

TEST_F(ServingTest, FullQueueAnswersResourceExhausted) {
  StartServer({"--workers", "1", "--max_running", "1", "--max_queue", "1"});
  pb::GenerateRequest long_request = Request(Prompt(0), 4000);
  long_request.mutable_stop()->set_ignore_eos(true);
  // One running, one waiting (both cancelled by their deadline), then a third is refused.
  std::thread running([&] { Generate(long_request, absl::Seconds(8)); });
  std::thread waiting;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  // Start the waiting one once the first is admitted.
  while (Metric("headroom_requests_running") < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  waiting = std::thread([&] { Generate(long_request, absl::Seconds(8)); });
  while (Metric("headroom_requests_waiting") < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const StreamResult refused = Generate(Request(Prompt(1), 5));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.status.error_message();
  EXPECT_NE(refused.status.error_message().find("queue"), std::string::npos);
  running.join();
  waiting.join();
  EXPECT_TRUE(Generate(Request(Prompt(1), 5)).status.ok());
  EXPECT_GE(Metric("headroom_request_failure_total", "", {{"code", "RESOURCE_EXHAUSTED"}}), 1);
}

TEST_F(ServingTest, FollowUpQuestionReusesThePrefixCache) {
  StartServer();
  std::string document;
  for (int i = 0; i < 30; ++i) document += Prompt(i) + " ";
  const StreamResult first = Generate(Request(document + "What did Lily do?", 8));
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.finished.usage().cached_tokens(), 0);
  const StreamResult second = Generate(Request(document + "Where did the cat go?", 8));
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  const auto& usage = second.finished.usage();
  EXPECT_GT(usage.cached_tokens(), usage.prompt_tokens() / 2);
  EXPECT_EQ(usage.cached_tokens() % 16, 0);
  EXPECT_GT(Metric("headroom_prefix_cache_hits_total"), 0);
  EXPECT_EQ(Metric("headroom_prefix_cache_cached_tokens_total"), usage.cached_tokens());
}

TEST_F(ServingTest, PromptLogprobsCoverTheDocument) {
  StartServer({"--step_tokens", "32"});
  std::string document;
  for (int i = 0; i < 8; ++i) document += Prompt(i) + " ";
  pb::GenerateRequest r = Request(document, 2);
  r.set_prompt_logprobs(true);
  const StreamResult result = Generate(r);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  const int64_t n = result.finished.usage().prompt_tokens();
  ASSERT_GT(n, 64);
  EXPECT_EQ(result.prompt_first, 1);
  ASSERT_EQ(static_cast<int64_t>(result.prompt_logprobs.size()), n - 1);
  double loss = 0.0;
  for (float lp : result.prompt_logprobs) {
    EXPECT_LE(lp, 0.0f);
    loss -= lp;
  }
  // stories260K reads its own kind of text far better than chance (ln 512).
  EXPECT_LT(loss / static_cast<double>(n - 1), 3.0);
}

TEST_F(ServingTest, MetricsPageHasEveryFamily) {
  StartServer();
  ASSERT_TRUE(Generate(Request(Prompt(4), 6)).status.ok());
  const auto families = Metrics();
  for (const char* name :
       {"headroom_requests_running", "headroom_requests_waiting", "headroom_kv_blocks_used",
        "headroom_kv_blocks_total", "headroom_kv_cache_usage_ratio", "headroom_prompt_tokens_total",
        "headroom_generation_tokens_total", "headroom_request_success_total",
        "headroom_request_failure_total", "headroom_preemptions_total",
        "headroom_time_to_first_token_seconds", "headroom_inter_token_latency_seconds",
        "headroom_request_queue_time_seconds", "headroom_request_prefill_time_seconds",
        "headroom_e2e_request_latency_seconds", "headroom_request_prompt_tokens",
        "headroom_chunks_scored_total", "headroom_chunks_selected_total",
        "headroom_keys_attended_per_query_token", "headroom_context_length_tokens",
        "headroom_prefix_cache_hits_total"}) {
    EXPECT_TRUE(families.contains(name)) << name;
  }
  EXPECT_GT(testing::SumSamples(families, "headroom_generation_tokens_total",
                                "headroom_generation_tokens_total"),
            0);
  EXPECT_EQ(testing::SumSamples(families, "headroom_time_to_first_token_seconds",
                                "headroom_time_to_first_token_seconds_count"),
            1);
  // Every step's forward pass is part of its time, and the steps ran the
  // prompt's tokens and every generated token but the last (sampled, not
  // run): so for this one request on a fresh server (no preemption, whose
  // recomputation would run generated tokens again).
  const double steps = testing::SumSamples(families, "headroom_step_duration_seconds",
                                           "headroom_step_duration_seconds_count");
  EXPECT_GE(steps, 1);
  EXPECT_EQ(testing::SumSamples(families, "headroom_forward_duration_seconds",
                                "headroom_forward_duration_seconds_count"),
            steps);
  EXPECT_LE(testing::SumSamples(families, "headroom_forward_duration_seconds",
                                "headroom_forward_duration_seconds_sum"),
            testing::SumSamples(families, "headroom_step_duration_seconds", "headroom_step_duration_seconds_sum"));
  EXPECT_EQ(testing::SumSamples(families, "headroom_step_tokens", "headroom_step_tokens_sum"),
            testing::SumSamples(families, "headroom_prompt_tokens_total", "headroom_prompt_tokens_total") +
                testing::SumSamples(families, "headroom_generation_tokens_total",
                                    "headroom_generation_tokens_total") -
                1);
}

}  // namespace
}  // namespace hr
