// The API layer of the real headroom-server on loopback: the streaming
// Generate (progress, deltas, Finished; greedy output identical to the
// engine's single-sequence Generate), every validation rule with its exact
// code, Tokenize / Detokenize, GetModelInfo, Cancel, the health service,
// reflection, the drain on SIGTERM, and a worker's lost device (the fault
// drill).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/engine/cuda_engine.h"
#include "headroom/v1/headroom.grpc.pb.h"
#include "server/engine/generator.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/engine/served_model.h"
#include "tests/test_util.h"
#include "tests/util/http_get.h"
#include "tests/util/prometheus_text.h"
#include "tests/util/server_process.h"
#include "tests/util/suite_server.h"

namespace hr {
namespace {

namespace pb = ::headroom::v1;
using grpc::StatusCode;

constexpr int kMaxInputTokens = 64;
constexpr int kMaxNewTokens = 2048;
constexpr int kDefaultMaxTokens = 16;
constexpr char kPrompt[] = "Once upon a time, a little dragon";

std::string ModelPath() { return testing::SharedDir() + "/models/stories260K.gguf"; }

std::vector<std::string> ServerArgv(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {testing::BuildDir() + "/server/headroom-server",
                                   "--model", ModelPath(),
                                   "--grpc_address", "127.0.0.1:0",
                                   "--metrics_address", "127.0.0.1:0",
                                   "--backend", "cpu",  // the expectations are the CPU engine's
                                   "--threads_per_worker", "1",
                                   "--max_input_tokens", absl::StrCat(kMaxInputTokens),
                                   "--max_new_tokens", absl::StrCat(kMaxNewTokens),
                                   "--default_max_tokens", absl::StrCat(kDefaultMaxTokens)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

void SetTimeout(grpc::ClientContext* context, absl::Duration timeout = absl::Seconds(60)) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

struct Stream {
  grpc::Status status;
  std::vector<pb::GenerateResponse> messages;

  std::vector<int32_t> ids() const {
    std::vector<int32_t> out;
    for (const auto& m : messages) out.insert(out.end(), m.delta().ids().begin(), m.delta().ids().end());
    return out;
  }
  std::string text() const {
    std::string out;
    for (const auto& m : messages) out += m.delta().text();
    return out;
  }
};

Stream RunGenerate(pb::Headroom::Stub& stub, const pb::GenerateRequest& request) {
  grpc::ClientContext context;
  SetTimeout(&context);
  Stream s;
  auto reader = stub.Generate(&context, request);
  pb::GenerateResponse response;
  while (reader->Read(&response)) s.messages.push_back(response);
  s.status = reader->Finish();
  return s;
}

// The server's /metrics page, parsed (an empty map after a failed check).
std::map<std::string, testing::MetricFamily> ScrapeMetrics(const testing::ServerProcess& server) {
  auto page = testing::HttpGet(absl::StrCat("http://", server.metrics_address(), "/metrics"));
  EXPECT_TRUE(page.ok()) << page.status();
  if (!page.ok()) return {};
  auto families = testing::ParsePrometheusText(*page);
  EXPECT_TRUE(families.ok()) << families.status();
  return families.ok() ? *families : std::map<std::string, testing::MetricFamily>{};
}

double FailureCount(const testing::ServerProcess& server, const std::string& code) {
  return testing::SumSamples(ScrapeMetrics(server), "headroom_request_failure_total",
                             "headroom_request_failure_total", {{"code", code}});
}

// grpc.health.v1 Check of `service` ("" for the whole server).
grpc::health::v1::HealthCheckResponse::ServingStatus CheckHealth(
    grpc::health::v1::Health::Stub& health, const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  SetTimeout(&context);
  const grpc::Status status = health.Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << "'" << service << "': " << status.error_message();
  return response.status();
}

pb::GenerateRequest TextRequest(const std::string& text, int max_tokens) {
  pb::GenerateRequest r;
  r.set_text(text);
  r.mutable_stop()->set_max_tokens(max_tokens);
  return r;
}

// A server of the test's own, with ServerArgv(extra); null (after a failed
// expectation) when it did not start.
std::unique_ptr<testing::ServerProcess> StartServer(std::vector<std::string> extra) {
  auto started = testing::ServerProcess::Start({.argv = ServerArgv(std::move(extra))});
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? std::move(*started) : nullptr;
}

// The Headroom and health stubs of one server, over one channel.
struct Clients {
  explicit Clients(const testing::ServerProcess& server)
      : channel(grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials())),
        stub(pb::Headroom::NewStub(channel)),
        health(grpc::health::v1::Health::NewStub(channel)) {}
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Headroom::Stub> stub;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};

// How a server ended (Wait or Stop): exit code 0.
void ExpectExitedZero(const absl::StatusOr<int>& code) {
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

// One server for the suite (started once: loading and starting cost more
// than the tests), plus the model for reference outputs.
class ServerApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { suite_ = testing::SuiteServer::Start(ServerArgv(), ModelPath()); }
  static void TearDownTestSuite() { suite_.reset(); }

  void SetUp() override { ASSERT_TRUE(suite_->ok()) << suite_->error; }

  static pb::Headroom::Stub& stub() { return *suite_->stub; }

  // What the engine's single-sequence Generate produces for `prompt` with
  // the server's default attention (greedy).
  static GenerateResult Reference(const std::vector<int32_t>& prompt, int max_tokens) {
    const ServedModel& served = *suite_->model->model;
    // The server's flag defaults.
    LongContextParams params = DefaultLongContextParams(served.config());
    BlockPool pool(served.kv_geometry(), KvDType::kF32, 256LL << 20);
    auto sequence = served.NewSequence(params, &pool);
    EXPECT_TRUE(sequence.ok()) << sequence.status();
    std::unique_ptr<CausalLm> model = served.NewInstance();
    GenerateOptions options;
    options.max_tokens = max_tokens;
    auto result = Generate(*model, suite_->model->tokenizer.get(), prompt, options, nullptr,
                           sequence.ok() ? sequence->get() : nullptr);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : GenerateResult{};
  }

  static double FailureCount(const std::string& code) { return hr::FailureCount(*suite_->server, code); }

  static inline std::unique_ptr<testing::SuiteServer> suite_;
};

TEST_F(ServerApiTest, StreamsProgressThenDeltasThenFinishedWithTheEnginesGreedyOutput) {
  constexpr int kMaxTokens = 40;
  pb::GenerateRequest request = TextRequest(kPrompt, kMaxTokens);
  request.set_request_id("stream-1");
  const Stream s = RunGenerate(stub(), request);
  ASSERT_TRUE(s.status.ok()) << s.status.error_code() << ": " << s.status.error_message();
  ASSERT_GE(s.messages.size(), 3u);

  auto prompt = suite_->model->tokenizer->Encode(kPrompt, true);
  ASSERT_TRUE(prompt.ok());
  const GenerateResult expected = Reference(*prompt, kMaxTokens);
  ASSERT_FALSE(expected.tokens.empty());

  bool seen_delta = false;
  int progress_events = 0;
  pb::PrefillProgress last_progress;
  for (size_t i = 0; i < s.messages.size(); ++i) {
    const pb::GenerateResponse& m = s.messages[i];
    EXPECT_EQ(m.request_id(), "stream-1") << i;
    if (i + 1 < s.messages.size()) {
      EXPECT_FALSE(m.has_finished()) << "Finished before the last message, at " << i;
    }
    if (m.has_progress()) {
      EXPECT_FALSE(seen_delta) << "progress after a delta at message " << i;
      EXPECT_LE(m.progress().processed_tokens(), m.progress().total_tokens());
      if (progress_events > 0) {
        EXPECT_GT(m.progress().processed_tokens(), last_progress.processed_tokens());
      }
      last_progress = m.progress();
      ++progress_events;
    } else if (m.has_delta()) {
      seen_delta = true;
      EXPECT_GT(m.delta().ids_size(), 0) << i;
      EXPECT_EQ(m.delta().logprobs_size(), 0) << "logprobs were not requested";
    }
  }
  EXPECT_GE(progress_events, 1);
  EXPECT_EQ(last_progress.total_tokens(), static_cast<int64_t>(prompt->size()));
  EXPECT_EQ(last_progress.processed_tokens(), static_cast<int64_t>(prompt->size()));

  EXPECT_EQ(s.ids(), expected.tokens);
  EXPECT_EQ(s.text(), expected.text);
  EXPECT_NE(s.text().find("named Benny"), std::string::npos) << s.text();

  ASSERT_TRUE(s.messages.back().has_finished());
  const pb::Finished& f = s.messages.back().finished();
  EXPECT_EQ(f.reason(), expected.finish == FinishReason::kLength ? pb::FINISH_REASON_LENGTH
                                                                 : pb::FINISH_REASON_STOP_TOKEN);
  EXPECT_EQ(f.usage().prompt_tokens(), static_cast<int64_t>(prompt->size()));
  EXPECT_EQ(f.usage().generated_tokens(), static_cast<int64_t>(expected.tokens.size()));
  EXPECT_GE(f.usage().cached_tokens(), 0);
  EXPECT_GE(f.timings().queue_seconds(), 0.0);
  EXPECT_GT(f.timings().prefill_seconds(), 0.0);
  EXPECT_GT(f.timings().time_to_first_token_seconds(), 0.0);
  EXPECT_GE(f.timings().decode_seconds(), 0.0);
  EXPECT_GE(f.timings().total_seconds(), f.timings().time_to_first_token_seconds());
  EXPECT_EQ(f.timings().preemptions(), 0);
}

TEST_F(ServerApiTest, TokenInputAndServerAssignedIdAndStopString) {
  auto prompt = suite_->model->tokenizer->Encode(kPrompt, true);
  ASSERT_TRUE(prompt.ok());
  pb::GenerateRequest request;
  request.mutable_tokens()->mutable_ids()->Add(prompt->begin(), prompt->end());
  request.mutable_stop()->set_max_tokens(40);
  request.mutable_stop()->add_stop_strings("Benny loved");
  const Stream s = RunGenerate(stub(), request);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  ASSERT_FALSE(s.messages.empty());
  const std::string id = s.messages[0].request_id();
  EXPECT_FALSE(id.empty());
  for (const auto& m : s.messages) EXPECT_EQ(m.request_id(), id);
  ASSERT_TRUE(s.messages.back().has_finished());
  EXPECT_EQ(s.messages.back().finished().reason(), pb::FINISH_REASON_STOP_STRING);
  EXPECT_EQ(s.text(), " named Benny. ") << "the text ends before the stop string";

  // Without a max_tokens the server's default applies.
  pb::GenerateRequest unbounded;
  unbounded.set_text("Once");
  unbounded.mutable_stop()->set_ignore_eos(true);
  const Stream d = RunGenerate(stub(), unbounded);
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  EXPECT_EQ(d.ids().size(), static_cast<size_t>(kDefaultMaxTokens));
  EXPECT_EQ(d.messages.back().finished().reason(), pb::FINISH_REASON_LENGTH);
}

TEST_F(ServerApiTest, LogprobsListTheSampledTokenAndItsAlternatives) {
  pb::GenerateRequest request = TextRequest(kPrompt, 8);
  request.set_logprobs(3);
  const Stream s = RunGenerate(stub(), request);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  int tokens = 0;
  for (const auto& m : s.messages) {
    if (!m.has_delta()) continue;
    ASSERT_EQ(m.delta().logprobs_size(), m.delta().ids_size());
    for (int i = 0; i < m.delta().ids_size(); ++i, ++tokens) {
      const pb::TokenLogprob& lp = m.delta().logprobs(i);
      EXPECT_EQ(lp.id(), m.delta().ids(i));
      ASSERT_EQ(lp.top_size(), 3);
      EXPECT_EQ(lp.top(0).id(), lp.id()) << "greedy picks the most likely token";
      EXPECT_FLOAT_EQ(lp.top(0).logprob(), lp.logprob());
      EXPECT_LE(lp.logprob(), 0.0f);
      EXPECT_GE(lp.top(0).logprob(), lp.top(1).logprob());
      EXPECT_GE(lp.top(1).logprob(), lp.top(2).logprob());
    }
  }
  EXPECT_EQ(tokens, 8);
}

// A client that reads nothing until the request has finished on the server:
// with a small HTTP/2 window the server's writes stall, and the reactor
// coalesces the tokens produced meanwhile into a few large deltas. Nothing
// is lost or reordered.
TEST_F(ServerApiTest, ASlowReaderGetsCoalescedDeltas) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = pb::Headroom::NewStub(grpc::CreateCustomChannel(
      suite_->server->grpc_address(), grpc::InsecureChannelCredentials(), args));
  auto successes = [] {
    auto page = testing::HttpGet(absl::StrCat("http://", suite_->server->metrics_address(), "/metrics"));
    auto families = page.ok() ? testing::ParsePrometheusText(*page)
                              : absl::StatusOr<std::map<std::string, testing::MetricFamily>>(page.status());
    return families.ok() ? testing::SumSamples(*families, "headroom_request_success_total",
                                               "headroom_request_success_total")
                         : -1.0;
  };
  const double before = successes();
  ASSERT_GE(before, 0);

  pb::GenerateRequest request = TextRequest(kPrompt, kMaxNewTokens);
  request.mutable_stop()->set_ignore_eos(true);
  grpc::ClientContext context;
  SetTimeout(&context);
  auto reader = stub->Generate(&context, request);
  // Wait (polling the metrics page, no sleep) until the server counts the
  // request as finished; the stream is not read meanwhile.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (successes() <= before && absl::Now() < give_up) {
  }
  ASSERT_GT(successes(), before) << "the request did not finish";

  Stream s;
  pb::GenerateResponse response;
  while (reader->Read(&response)) s.messages.push_back(response);
  s.status = reader->Finish();
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  int deltas = 0;
  for (const auto& m : s.messages) deltas += m.has_delta() ? 1 : 0;
  EXPECT_EQ(s.ids().size(), static_cast<size_t>(kMaxNewTokens));
  EXPECT_LT(deltas, kMaxNewTokens / 4) << "deltas were not coalesced";
  ASSERT_TRUE(s.messages.back().has_finished());
  EXPECT_EQ(s.messages.back().finished().usage().generated_tokens(), kMaxNewTokens);
  // The streamed text continues the prompt (leading space kept); Decode
  // drops the first piece's space.
  std::string text = s.text();
  if (!text.empty() && text[0] == ' ') text.erase(0, 1);
  EXPECT_EQ(text, suite_->model->tokenizer->Decode(s.ids())) << "the coalesced text is the tokens' text";
}

struct BadCase {
  std::string name;
  std::function<void(pb::GenerateRequest*)> mutate;
  StatusCode code;
  std::string message;  // a substring of the status message
};

std::vector<BadCase> BadCases() {
  using R = pb::GenerateRequest;
  std::vector<BadCase> c;
  auto invalid = [&](std::string name, std::function<void(R*)> f, std::string message) {
    c.push_back({std::move(name), std::move(f), StatusCode::INVALID_ARGUMENT, std::move(message)});
  };
  invalid("no input", [](R* r) { r->clear_input(); }, "input must be set");
  invalid("empty text", [](R* r) { r->set_text(""); }, "text must not be empty");
  invalid("empty ids", [](R* r) { r->mutable_tokens(); }, "tokens.ids must not be empty");
  invalid("invalid UTF-8 text", [](R* r) { r->set_text("Once \xff\xfe upon"); },
          "text is not valid UTF-8");
  invalid("invalid UTF-8 stop string",
          [](R* r) { r->mutable_stop()->add_stop_strings("ok"), r->mutable_stop()->add_stop_strings("\xc3"); },
          "stop.stop_strings[1] is not valid UTF-8");
  invalid("id over the vocabulary",
          [](R* r) { r->mutable_tokens()->add_ids(1), r->mutable_tokens()->add_ids(512); },
          "tokens.ids[1] = 512 is outside the vocabulary [0, 512)");
  invalid("negative id", [](R* r) { r->mutable_tokens()->add_ids(-1); },
          "tokens.ids[0] = -1 is outside the vocabulary");
  invalid("negative temperature", [](R* r) { r->mutable_sampling()->set_temperature(-0.5f); },
          "sampling.temperature must be a finite value >= 0, got -0.5");
  invalid("top_p over 1", [](R* r) { r->mutable_sampling()->set_top_p(1.5f); },
          "sampling.top_p must be in (0, 1], got 1.5");
  invalid("top_p 0", [](R* r) { r->mutable_sampling()->set_top_p(0.0f); },
          "sampling.top_p must be in (0, 1], got 0");
  invalid("negative top_k", [](R* r) { r->mutable_sampling()->set_top_k(-1); },
          "sampling.top_k must be >= 0, got -1");
  invalid("min_p 1", [](R* r) { r->mutable_sampling()->set_min_p(1.0f); },
          "sampling.min_p must be in [0, 1), got 1");
  invalid("negative min_p", [](R* r) { r->mutable_sampling()->set_min_p(-0.1f); },
          "sampling.min_p must be in [0, 1)");
  invalid("repetition_penalty 0", [](R* r) { r->mutable_sampling()->set_repetition_penalty(0.0f); },
          "sampling.repetition_penalty must be a finite value > 0, got 0");
  invalid("max_tokens 0", [](R* r) { r->mutable_stop()->set_max_tokens(0); },
          "stop.max_tokens must be in [1, 2048], got 0");
  invalid("max_tokens over the limit", [](R* r) { r->mutable_stop()->set_max_tokens(kMaxNewTokens + 1); },
          "stop.max_tokens must be in [1, 2048], got 2049");
  invalid("logprobs 21", [](R* r) { r->set_logprobs(21); }, "logprobs must be in [0, 20], got 21");
  invalid("negative logprobs", [](R* r) { r->set_logprobs(-1); }, "logprobs must be in [0, 20], got -1");
  invalid("request_id of 129 bytes", [](R* r) { r->set_request_id(std::string(129, 'x')); },
          "request_id is 129 bytes, at most 128 allowed");
  invalid("empty stop string", [](R* r) { r->mutable_stop()->add_stop_strings(""); },
          "stop.stop_strings[0] must not be empty");
  invalid("17 stop strings",
          [](R* r) {
            for (int i = 0; i < 17; ++i) r->mutable_stop()->add_stop_strings(absl::StrCat("s", i));
          },
          "stop.stop_strings has 17 entries, at most 16 allowed");
  invalid("stop token id over the vocabulary", [](R* r) { r->mutable_stop()->add_stop_token_ids(9999); },
          "stop.stop_token_ids[0] = 9999 is outside the vocabulary");
  invalid("unknown policy",
          [](R* r) { r->mutable_long_context()->set_policy(static_cast<pb::AttentionPolicy>(99)); },
          "long_context.policy has unknown value 99");
  invalid("unknown summary",
          [](R* r) { r->mutable_long_context()->set_summary(static_cast<pb::SummaryKind>(7)); },
          "long_context.summary has unknown value 7");
  invalid("unknown gqa_selection",
          [](R* r) { r->mutable_long_context()->set_gqa_selection(static_cast<pb::GqaSelection>(5)); },
          "long_context.gqa_selection has unknown value 5");
  invalid("unknown prefill_selection",
          [](R* r) {
            r->mutable_long_context()->set_prefill_selection(static_cast<pb::PrefillSelection>(-3));
          },
          "long_context.prefill_selection has unknown value -3");
  invalid("unknown priority", [](R* r) { r->set_priority(static_cast<pb::Priority>(42)); },
          "priority has unknown value 42");
  invalid("window not a multiple of the chunk",
          [](R* r) {
            r->mutable_long_context()->set_policy(pb::ATTENTION_POLICY_WINDOW);
            r->mutable_long_context()->set_chunk_size(64);
            r->mutable_long_context()->set_atten_length(100);
          },
          "long_context.atten_length (100) must be a positive multiple of chunk_size (64)");
  invalid("fewer than 3 slots",
          [](R* r) {
            r->mutable_long_context()->set_chunk_size(16);
            r->mutable_long_context()->set_atten_length(32);
          },
          "long_context.atten_length / chunk_size must be at least 3 slots");
  invalid("chunk size that does not divide the server's window",
          [](R* r) { r->mutable_long_context()->set_chunk_size(1000); },
          "long_context.atten_length (2048) must be a positive multiple of chunk_size (1000)");
  invalid("negative chunk_size", [](R* r) { r->mutable_long_context()->set_chunk_size(-16); },
          "long_context.chunk_size must be >= 0");
  invalid("huge window", [](R* r) { r->mutable_long_context()->set_atten_length(1 << 30); },
          "long_context.atten_length must be at most");
  c.push_back({"input over max_input_tokens",
               [](R* r) {
                 for (int i = 0; i <= kMaxInputTokens; ++i) r->mutable_tokens()->add_ids(100);
               },
               StatusCode::OUT_OF_RANGE, "the input has 65 tokens, more than the server's limit of 64"});
  return c;
}

TEST_F(ServerApiTest, EveryBadInputGetsItsCodeAndTheServerKeepsServing) {
  const double invalid_before = FailureCount("INVALID_ARGUMENT");
  const double out_of_range_before = FailureCount("OUT_OF_RANGE");
  int invalid = 0, out_of_range = 0;
  for (const BadCase& bad : BadCases()) {
    pb::GenerateRequest request = TextRequest("Once upon a time", 4);
    bad.mutate(&request);
    const Stream s = RunGenerate(stub(), request);
    EXPECT_EQ(s.status.error_code(), bad.code) << bad.name << ": " << s.status.error_message();
    EXPECT_NE(s.status.error_message().find(bad.message), std::string::npos)
        << bad.name << ": got \"" << s.status.error_message() << "\", want \"" << bad.message << "\"";
    EXPECT_TRUE(s.messages.empty()) << bad.name;
    (bad.code == StatusCode::OUT_OF_RANGE ? out_of_range : invalid)++;
  }
  // Every rejection is counted under its code.
  EXPECT_EQ(FailureCount("INVALID_ARGUMENT") - invalid_before, invalid);
  EXPECT_EQ(FailureCount("OUT_OF_RANGE") - out_of_range_before, out_of_range);

  // The same values just inside the limits are accepted.
  pb::GenerateRequest edge = TextRequest("Once upon a time", 1);
  edge.mutable_sampling()->set_top_p(1.0f);
  edge.mutable_sampling()->set_min_p(0.0f);
  edge.mutable_sampling()->set_temperature(0.7f);
  edge.set_logprobs(20);
  edge.set_request_id(std::string(128, 'y'));
  edge.mutable_long_context()->set_policy(pb::ATTENTION_POLICY_WINDOW);
  edge.mutable_long_context()->set_chunk_size(16);
  edge.mutable_long_context()->set_atten_length(48);
  const Stream ok = RunGenerate(stub(), edge);
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.ids().size(), 1u);

  // And the server still answers a normal request.
  const Stream after = RunGenerate(stub(), TextRequest(kPrompt, 5));
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.ids().size(), 5u);
}

TEST_F(ServerApiTest, TokenizeDetokenizeRoundTrip) {
  pb::TokenizeRequest request;
  request.set_text("Once upon a time");
  pb::TokenizeResponse tokens;
  grpc::ClientContext c1;
  SetTimeout(&c1);
  ASSERT_TRUE(stub().Tokenize(&c1, request, &tokens).ok());
  auto expected = suite_->model->tokenizer->Encode("Once upon a time", true);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(std::vector<int32_t>(tokens.ids().begin(), tokens.ids().end()), *expected);
  ASSERT_EQ(tokens.pieces_size(), tokens.ids_size());
  EXPECT_EQ(tokens.ids(0), suite_->model->tokenizer->bos_id());
  for (int i = 0; i < tokens.ids_size(); ++i) {
    EXPECT_EQ(tokens.pieces(i), suite_->model->tokenizer->Piece(tokens.ids(i)));
  }

  pb::DetokenizeRequest back;
  *back.mutable_ids() = tokens.ids();
  pb::DetokenizeResponse text;
  grpc::ClientContext c2;
  SetTimeout(&c2);
  ASSERT_TRUE(stub().Detokenize(&c2, back, &text).ok());
  EXPECT_EQ(text.text(), "Once upon a time");

  request.set_add_bos(false);
  grpc::ClientContext c3;
  SetTimeout(&c3);
  ASSERT_TRUE(stub().Tokenize(&c3, request, &tokens).ok());
  EXPECT_EQ(tokens.ids_size(), static_cast<int>(expected->size()) - 1);
  EXPECT_NE(tokens.ids(0), suite_->model->tokenizer->bos_id());
}

TEST_F(ServerApiTest, TokenizeAndDetokenizeRejectBadInput) {
  pb::TokenizeRequest request;
  request.set_text("bad \xff byte");
  pb::TokenizeResponse tokens;
  grpc::ClientContext c1;
  SetTimeout(&c1);
  grpc::Status status = stub().Tokenize(&c1, request, &tokens);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "text is not valid UTF-8");

  pb::DetokenizeRequest ids;
  ids.add_ids(5);
  ids.add_ids(100000);
  pb::DetokenizeResponse text;
  grpc::ClientContext c2;
  SetTimeout(&c2);
  status = stub().Detokenize(&c2, ids, &text);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "ids[1] = 100000 is outside the vocabulary [0, 512)");
}

TEST_F(ServerApiTest, GetModelInfoDescribesModelDefaultsAndLimits) {
  pb::ModelInfo info;
  grpc::ClientContext context;
  SetTimeout(&context);
  ASSERT_TRUE(stub().GetModelInfo(&context, pb::GetModelInfoRequest(), &info).ok());
  const ModelConfig& config = suite_->model->model->config();
  EXPECT_EQ(info.api_version(), "headroom.v1");
  EXPECT_FALSE(info.server_version().empty());
  EXPECT_EQ(info.model_name(), "stories260K");
  EXPECT_EQ(info.architecture(), "llama");
  EXPECT_EQ(info.trained_context(), config.trained_context);
  EXPECT_EQ(info.vocab_size(), 512);
  EXPECT_EQ(info.vocab_size(), suite_->model->tokenizer->vocab_size());
  EXPECT_EQ(info.n_layers(), config.n_layers);
  EXPECT_EQ(info.n_heads(), config.n_heads);
  EXPECT_EQ(info.n_kv_heads(), config.n_kv_heads);
  EXPECT_EQ(info.head_dim(), config.head_dim);
  EXPECT_EQ(info.bos_id(), suite_->model->tokenizer->bos_id());
  EXPECT_EQ(info.eos_id(), suite_->model->tokenizer->eos_id());

  const LongContextParams defaults = DefaultLongContextParams(config);
  const pb::LongContextOptions& lc = info.long_context_defaults();
  EXPECT_EQ(lc.policy(), pb::ATTENTION_POLICY_LONGHEADS);
  EXPECT_EQ(lc.chunk_size(), defaults.chunk_size);
  EXPECT_EQ(lc.atten_length(), defaults.atten_length);
  EXPECT_EQ(lc.atten_length(), 2048);  // min(trained context, 4096)
  EXPECT_EQ(lc.chunk_size(), 256);     // atten_length / 8
  EXPECT_EQ(lc.summary(), pb::SUMMARY_KIND_BOUND);
  EXPECT_EQ(lc.gqa_selection(), pb::GQA_SELECTION_QUERY_HEAD);
  EXPECT_EQ(lc.prefill_selection(), pb::PREFILL_SELECTION_TOKEN);

  EXPECT_EQ(info.limits().max_input_tokens(), kMaxInputTokens);
  EXPECT_EQ(info.limits().max_new_tokens(), kMaxNewTokens);
  EXPECT_EQ(info.limits().default_max_tokens(), kDefaultMaxTokens);
  EXPECT_EQ(info.limits().max_queue(), 256);
  EXPECT_EQ(info.limits().kv_cache_bytes_per_worker(), 1024LL << 20);
  EXPECT_EQ(info.limits().max_logprobs(), 20);
  EXPECT_EQ(info.backend(), "cpu");
  EXPECT_EQ(info.workers(), 1);
  EXPECT_EQ(info.kv_dtype(), "f32");
  ASSERT_EQ(info.worker_size(), 1);
  EXPECT_EQ(info.worker(0).index(), 0);
  EXPECT_EQ(info.worker(0).device(), "cpu");
  EXPECT_EQ(info.worker(0).kv_cache_bytes(), 1024LL << 20);
  EXPECT_FALSE(info.worker(0).lost());
  EXPECT_EQ(info.workers_lost(), 0);
}

TEST_F(ServerApiTest, CancelOfAnUnknownIdIsNotFound) {
  pb::CancelRequest request;
  request.set_request_id("no-such-request");
  pb::CancelResponse response;
  grpc::ClientContext c1;
  SetTimeout(&c1);
  grpc::Status status = stub().Cancel(&c1, request, &response);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND) << status.error_message();

  request.clear_request_id();
  grpc::ClientContext c2;
  SetTimeout(&c2);
  status = stub().Cancel(&c2, request, &response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
}

TEST_F(ServerApiTest, CancelByIdEndsTheRunningStreamCancelled) {
  pb::GenerateRequest request = TextRequest(kPrompt, kMaxNewTokens);
  request.mutable_stop()->set_ignore_eos(true);
  request.set_request_id("to-cancel");
  grpc::ClientContext context;
  SetTimeout(&context);
  auto reader = stub().Generate(&context, request);
  pb::GenerateResponse response;
  int64_t tokens = 0;
  while (tokens == 0 && reader->Read(&response)) tokens += response.delta().ids_size();
  ASSERT_GT(tokens, 0);

  pb::CancelRequest cancel;
  cancel.set_request_id("to-cancel");
  pb::CancelResponse cancelled;
  grpc::ClientContext cancel_context;
  SetTimeout(&cancel_context);
  grpc::Status status = stub().Cancel(&cancel_context, cancel, &cancelled);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();

  bool finished = false;
  while (reader->Read(&response)) {
    tokens += response.delta().ids_size();
    finished = finished || response.has_finished();
  }
  status = reader->Finish();
  EXPECT_EQ(status.error_code(), StatusCode::CANCELLED) << status.error_message();
  EXPECT_FALSE(finished);
  EXPECT_LT(tokens, kMaxNewTokens);
}

TEST_F(ServerApiTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(suite_->channel);
  for (const std::string service : {"", "headroom.v1.Headroom"}) {
    EXPECT_EQ(CheckHealth(*health, service), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(ServerApiTest, ReflectionListsAndDescribesTheService) {
  namespace rpb = ::grpc::reflection::v1alpha;
  auto reflection = rpb::ServerReflection::NewStub(suite_->channel);
  grpc::ClientContext context;
  SetTimeout(&context);
  auto stream = reflection->ServerReflectionInfo(&context);

  rpb::ServerReflectionRequest list;
  list.set_list_services("*");
  ASSERT_TRUE(stream->Write(list));
  rpb::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::set<std::string> services;
  for (const auto& s : response.list_services_response().service()) services.insert(s.name());
  EXPECT_TRUE(services.count("headroom.v1.Headroom")) << response.DebugString();
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << response.DebugString();

  rpb::ServerReflectionRequest describe;
  describe.set_file_containing_symbol("headroom.v1.Headroom");
  ASSERT_TRUE(stream->Write(describe));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_GE(response.file_descriptor_response().file_descriptor_proto_size(), 1)
      << response.DebugString();
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "headroom/v1/headroom.proto");
  ASSERT_EQ(file.service_size(), 1);
  std::set<std::string> methods;
  for (const auto& m : file.service(0).method()) methods.insert(m.name());
  EXPECT_EQ(methods, (std::set<std::string>{"Generate", "Tokenize", "Detokenize", "GetModelInfo",
                                            "Cancel"}));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// SIGTERM while a stream runs: health turns NOT_SERVING, new requests get
// UNAVAILABLE, the running stream completes, and the server exits 0.
TEST(ServerDrainTest, SigtermLetsTheRunningStreamFinishAndExitsZero) {
  std::unique_ptr<testing::ServerProcess> server = StartServer({"--drain_timeout_s", "60"});
  ASSERT_NE(server, nullptr);
  Clients clients(*server);
  auto& stub = clients.stub;
  auto& health = clients.health;

  // Watch health: the first answer is SERVING.
  grpc::ClientContext watch_context;
  SetTimeout(&watch_context);
  grpc::health::v1::HealthCheckRequest watch_request;
  auto watch = health->Watch(&watch_context, watch_request);
  grpc::health::v1::HealthCheckResponse health_status;
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  constexpr int kTokens = kMaxNewTokens;
  pb::GenerateRequest request = TextRequest(kPrompt, kTokens);
  request.mutable_stop()->set_ignore_eos(true);
  grpc::ClientContext context;
  SetTimeout(&context);
  auto reader = stub->Generate(&context, request);
  pb::GenerateResponse response;
  int64_t tokens = 0;
  while (tokens == 0 && reader->Read(&response)) tokens += response.delta().ids_size();
  ASSERT_GT(tokens, 0);

  ASSERT_TRUE(server->Signal(SIGTERM).ok());
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  watch_context.TryCancel();
  (void)watch->Finish();

  const Stream late = RunGenerate(*stub, TextRequest(kPrompt, 4));
  EXPECT_EQ(late.status.error_code(), StatusCode::UNAVAILABLE) << late.status.error_message();

  bool finished = false;
  while (reader->Read(&response)) {
    tokens += response.delta().ids_size();
    finished = finished || response.has_finished();
  }
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_TRUE(finished);
  EXPECT_EQ(tokens, kTokens);

  ExpectExitedZero(server->Wait(absl::Seconds(60)));
}

// With no drain time the running stream ends UNAVAILABLE; still exit 0.
TEST(ServerDrainTest, DrainTimeoutEndsTheRunningStreamUnavailable) {
  std::unique_ptr<testing::ServerProcess> server = StartServer({"--drain_timeout_s", "0"});
  ASSERT_NE(server, nullptr);
  auto stub = pb::Headroom::NewStub(
      grpc::CreateChannel(server->grpc_address(), grpc::InsecureChannelCredentials()));

  pb::GenerateRequest request = TextRequest(kPrompt, kMaxNewTokens);
  request.mutable_stop()->set_ignore_eos(true);
  grpc::ClientContext context;
  SetTimeout(&context);
  auto reader = stub->Generate(&context, request);
  pb::GenerateResponse response;
  int64_t tokens = 0;
  while (tokens == 0 && reader->Read(&response)) tokens += response.delta().ids_size();
  ASSERT_GT(tokens, 0);

  ASSERT_TRUE(server->Signal(SIGTERM).ok());
  while (reader->Read(&response)) tokens += response.delta().ids_size();
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(tokens, kMaxNewTokens);

  ExpectExitedZero(server->Wait(absl::Seconds(60)));
}

// A prompt of two complete 16-token chunks and some: worker 0 caches them
// before its device is lost.
constexpr char kChunkedPrompt[] =
    "Once upon a time, a little dragon lived in a cave by the sea. He liked to fly over the "
    "water and sing to the fish.";

// The fault drill on worker 0 of two (--device_fault_drill_step 3: the third
// forward step): the stream on it ends UNAVAILABLE after two tokens, health
// turns NOT_SERVING for "" and the service, headroom_worker_up shows which
// worker is lost and GetModelInfo how many, the same request then runs on worker 1 (although worker
// 0's prefix cache holds its prompt) with the same greedy tokens, and
// SIGTERM still exits 0.
TEST(ServerDeviceFaultTest, ALostWorkerTurnsHealthNotServingWhileTheOtherServes) {
  std::unique_ptr<testing::ServerProcess> server = StartServer(
      {"--workers", "2", "--device_fault_drill_step", "3", "--chunk_size", "16", "--atten_length", "64"});
  ASSERT_NE(server, nullptr);
  Clients clients(*server);
  auto& stub = clients.stub;
  auto& health = clients.health;
  using grpc::health::v1::HealthCheckResponse;

  grpc::ClientContext watch_context;
  SetTimeout(&watch_context);
  auto watch = health->Watch(&watch_context, grpc::health::v1::HealthCheckRequest());
  HealthCheckResponse health_status;
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), HealthCheckResponse::SERVING);
  auto up = [&](const std::string& worker) {
    return testing::SumSamples(ScrapeMetrics(*server), "headroom_worker_up", "headroom_worker_up",
                               {{"worker", worker}});
  };
  EXPECT_EQ(up("0"), 1.0);
  EXPECT_EQ(up("1"), 1.0);
  // GetModelInfo: how many workers are lost, and which.
  auto lost_workers = [&] {
    pb::ModelInfo info;
    grpc::ClientContext context;
    SetTimeout(&context);
    EXPECT_TRUE(stub->GetModelInfo(&context, pb::GetModelInfoRequest(), &info).ok());
    EXPECT_EQ(info.workers(), 2);
    EXPECT_EQ(info.worker_size(), 2);
    std::vector<int> lost;
    for (const pb::WorkerInfo& w : info.worker()) {
      if (w.lost()) lost.push_back(w.index());
    }
    EXPECT_EQ(info.workers_lost(), static_cast<int>(lost.size()));
    return lost;
  };
  EXPECT_EQ(lost_workers(), std::vector<int>{});

  constexpr int kTokens = 12;
  pb::GenerateRequest request = TextRequest(kChunkedPrompt, kTokens);
  request.mutable_stop()->set_ignore_eos(true);
  const Stream lost = RunGenerate(*stub, request);  // equal room: worker 0
  EXPECT_EQ(lost.status.error_code(), StatusCode::UNAVAILABLE) << lost.status.error_message();
  EXPECT_NE(lost.status.error_message().find("worker 0 (cpu) lost its device"), std::string::npos)
      << lost.status.error_message();
  EXPECT_EQ(lost.ids().size(), 2u);  // prefill and one decode step ran

  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), HealthCheckResponse::NOT_SERVING);
  watch_context.TryCancel();
  (void)watch->Finish();
  for (const std::string service : {"", "headroom.v1.Headroom"}) {
    EXPECT_EQ(CheckHealth(*health, service), HealthCheckResponse::NOT_SERVING) << service;
  }
  EXPECT_EQ(up("0"), 0.0);
  EXPECT_EQ(up("1"), 1.0);
  EXPECT_EQ(lost_workers(), std::vector<int>{0});
  EXPECT_EQ(FailureCount(*server, "UNAVAILABLE"), 1.0);

  const Stream served = RunGenerate(*stub, request);
  ASSERT_TRUE(served.status.ok()) << served.status.error_message();
  ASSERT_EQ(served.ids().size(), static_cast<size_t>(kTokens));
  const std::vector<int32_t> before_loss = lost.ids();
  EXPECT_TRUE(std::equal(before_loss.begin(), before_loss.end(), served.ids().begin()));
  ASSERT_TRUE(served.messages.back().has_finished());
  EXPECT_EQ(served.messages.back().finished().usage().cached_tokens(), 0);  // worker 1's cache

  ExpectExitedZero(server->Stop());
}

// With its only worker lost the server refuses generation UNAVAILABLE at
// once, still answers the RPCs that need no worker, and exits 0.
TEST(ServerDeviceFaultTest, WithItsOnlyWorkerLostGenerationIsUnavailable) {
  std::unique_ptr<testing::ServerProcess> server = StartServer({"--device_fault_drill_step", "1"});
  ASSERT_NE(server, nullptr);
  Clients clients(*server);
  auto& stub = clients.stub;
  auto& health = clients.health;

  const Stream lost = RunGenerate(*stub, TextRequest(kPrompt, 4));
  EXPECT_EQ(lost.status.error_code(), StatusCode::UNAVAILABLE) << lost.status.error_message();
  EXPECT_TRUE(lost.ids().empty());
  const Stream refused = RunGenerate(*stub, TextRequest(kPrompt, 4));
  EXPECT_EQ(refused.status.error_code(), StatusCode::UNAVAILABLE) << refused.status.error_message();
  EXPECT_NE(refused.status.error_message().find("every worker has lost its device"), std::string::npos)
      << refused.status.error_message();
  EXPECT_EQ(CheckHealth(*health, ""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);

  pb::TokenizeRequest tokenize;
  tokenize.set_text(kPrompt);
  pb::TokenizeResponse tokens;
  grpc::ClientContext context;
  SetTimeout(&context);
  EXPECT_TRUE(stub->Tokenize(&context, tokenize, &tokens).ok());
  EXPECT_GT(tokens.ids_size(), 0);

  ExpectExitedZero(server->Stop());
}

TEST(ServerStartTest, ALoadErrorExitsNonZeroNamingTheFile) {
  auto started = testing::ServerProcess::Start(
      {.argv = {testing::BuildDir() + "/server/headroom-server", "--model", "/nonexistent/model.gguf",
                "--grpc_address", "127.0.0.1:0", "--metrics_address", ""}});
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kFailedPrecondition) << started.status();
  EXPECT_NE(started.status().message().find("exit code 1"), std::string::npos) << started.status();
}

// --backend cuda where CUDA cannot serve (no device here, or a build
// without it) exits 1 (the reason, on stderr, is backend_choice_test's).
TEST(ServerStartTest, BackendCudaWithoutAUsableGpuExitsNamingWhy) {
  if (VisibleCudaDevices() > 0) GTEST_SKIP() << "a CUDA device is visible";
  auto started = testing::ServerProcess::Start(
      {.argv = {testing::BuildDir() + "/server/headroom-server", "--model",
                testing::SharedDir() + "/models/stories260K.gguf", "--backend", "cuda",
                "--grpc_address", "127.0.0.1:0", "--metrics_address", ""}});
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.status().message().find("exit code 1"), std::string::npos) << started.status();
}

}  // namespace
}  // namespace hr
