// hr_client, the `headroom` CLI and the Python client against the real
// headroom-server serving stories260K (greedy outputs are llama2.c's, as in
// tests/integration/generate_cli_test.cc).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "client/headroom_client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/e2e_util.h"
#include "tests/test_util.h"

namespace hr::testing {
namespace {

namespace v1 = ::headroom::v1;
using hr::client::CallOptions;
using hr::client::CancelToken;
using hr::client::GenerateCallbacks;
using hr::client::HeadroomClient;

constexpr char kPrompt[] = "Once upon a time, a little dragon";
constexpr char kContinuation[] = " named Benny. Benny loved to play with his toys and run around.";

absl::StatusOr<std::unique_ptr<ServerProcess>> StartServer() {
  return ServerProcess::Start({.argv = {HR_SERVER_BINARY, "--model", SharedDir() + "/models/stories260K.gguf",
                                        "--grpc_address", "127.0.0.1:0", "--metrics_address", "127.0.0.1:0",
                                        "--backend", "cpu"}});  // llama2.c's reference outputs
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = StartServer();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      auto code = server_->Stop();
      EXPECT_TRUE(code.ok() && *code == 0) << (code.ok() ? "exit code " + std::to_string(*code)
                                                         : code.status().ToString());
    }
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<HeadroomClient>(server_->grpc_address());
  }
  ProcessResult Cli(const std::string& subcommand, std::vector<std::string> args) {
    return RunCli(server_->grpc_address(), subcommand, std::move(args));
  }
  // A request that runs long enough to be cancelled mid-stream.
  static v1::GenerateRequest Long() {
    v1::GenerateRequest r;
    r.set_text(kPrompt);
    r.mutable_stop()->set_max_tokens(400);
    r.mutable_stop()->set_ignore_eos(true);
    return r;
  }
  static ServerProcess* server_;
  std::unique_ptr<HeadroomClient> client_;
};
ServerProcess* ServerTest::server_ = nullptr;

TEST_F(ServerTest, CliGeneratesTheReferenceStoryUnderEveryPolicy) {
  for (const char* policy : {"full", "window", "longheads"}) {
    ProcessResult r = Cli("generate", {"--text", kPrompt, "--max_tokens", "30", "--policy", policy});
    EXPECT_EQ(r.exit_code, 0) << policy << ": " << r.err;
    EXPECT_TRUE(Contains(r.out, kContinuation)) << policy << ": " << r.out;
    EXPECT_TRUE(Contains(r.err, "generated 30 tokens")) << r.err;
    EXPECT_TRUE(Contains(r.err, "finish: length]")) << r.err;
  }
}

TEST_F(ServerTest, CliTokenizeInfoHealth) {
  auto info = client_->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  ProcessResult r = Cli("tokenize", {"--text", "Once upon a time"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(std::to_string(info->bos_id()) + " ", 0), 0u) << r.out;
  const size_t n_ids = std::count(r.out.begin(), r.out.end(), ' ') + 1;
  r = Cli("tokenize", {"--text", "Once upon a time", "--pieces"});
  EXPECT_EQ(static_cast<size_t>(std::count(r.out.begin(), r.out.end(), '\n')), n_ids) << r.out;
  EXPECT_TRUE(Contains(r.out, "Once")) << r.out;

  r = Cli("info", {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "architecture   llama\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "vocabulary     512 tokens")) << r.out;
  r = Cli("health", {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
}

TEST_F(ServerTest, CliBench) {
  const std::string json_path = MakeTempDir("bench") + "/bench.json";
  ProcessResult r = Cli("bench", {"--num_prompts", "8", "--concurrency", "4", "--input_tokens", "32",
                                  "--output_tokens", "16", "--json_out", json_path});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  const nlohmann::json j = nlohmann::json::parse(ReadFileOrDie(json_path));
  EXPECT_EQ(j["completed"], 8);
  EXPECT_EQ(j["total_input_tokens"], 8 * 32);
  EXPECT_EQ(j["total_output_tokens"], 8 * 16);
  EXPECT_EQ(j["ttft"]["count"], 8);
  EXPECT_EQ(j["e2e_latency"]["count"], 8);
  EXPECT_GT(j["output_throughput"].get<double>(), 0.0);
}

TEST_F(ServerTest, LibraryStreamsInOrderAndReportsUsage) {
  std::vector<char> order;
  std::string text;
  GenerateCallbacks cb;
  cb.on_progress = [&](const v1::PrefillProgress&) { order.push_back('p'); };
  cb.on_delta = [&](const v1::TokenDelta& d) {
    order.push_back('d');
    text += d.text();
  };
  v1::GenerateRequest request;
  request.set_text(kPrompt);
  request.mutable_stop()->set_max_tokens(30);
  auto result = client_->Generate(request, cb);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->finished.reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(result->finished.usage().generated_tokens(), 30);
  EXPECT_GT(result->finished.usage().prompt_tokens(), 1);
  EXPECT_TRUE(Contains(text, kContinuation)) << text;
  ASSERT_FALSE(order.empty());
  const auto first_delta = std::find(order.begin(), order.end(), 'd');
  EXPECT_NE(first_delta, order.end());
  EXPECT_EQ(std::find(first_delta, order.end(), 'p'), order.end()) << "progress after a delta";
  EXPECT_FALSE(result->request_id.empty());
}

TEST_F(ServerTest, LibraryDeliversPromptLogprobsBeforeTheFirstDelta) {
  std::vector<char> order;
  std::vector<float> logprobs;
  int64_t first = -1;
  GenerateCallbacks cb;
  cb.on_prompt_logprobs = [&](const v1::PromptLogprobs& p) {
    order.push_back('l');
    if (first < 0) first = p.first_position();
    EXPECT_EQ(p.first_position(), first + static_cast<int64_t>(logprobs.size())) << "contiguous, in order";
    logprobs.insert(logprobs.end(), p.logprobs().begin(), p.logprobs().end());
  };
  cb.on_delta = [&](const v1::TokenDelta&) { order.push_back('d'); };
  v1::GenerateRequest request;
  request.set_text(kPrompt);
  request.set_prompt_logprobs(true);
  request.mutable_stop()->set_max_tokens(3);
  auto result = client_->Generate(request, cb);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(first, 1) << "the first prompt token has no context to score it";
  EXPECT_EQ(static_cast<int64_t>(logprobs.size()), result->finished.usage().prompt_tokens() - 1);
  for (float lp : logprobs) {
    EXPECT_LE(lp, 0.0f);
    EXPECT_TRUE(std::isfinite(lp));
  }
  const auto first_delta = std::find(order.begin(), order.end(), 'd');
  ASSERT_NE(first_delta, order.end());
  EXPECT_EQ(std::find(first_delta, order.end(), 'l'), order.end()) << "prompt logprobs after a delta";
}

TEST_F(ServerTest, LibraryErrorsCancellationAndDeadlines) {
  v1::GenerateRequest empty;
  empty.set_text("");
  EXPECT_EQ(client_->Generate(empty, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Cancel("no-such-request").code(), absl::StatusCode::kNotFound);

  CancelToken token;
  GenerateCallbacks cancel_on_first;
  cancel_on_first.on_delta = [&](const v1::TokenDelta&) { token.Cancel(); };
  CallOptions with_token;
  with_token.cancel = &token;
  EXPECT_EQ(client_->Generate(Long(), cancel_on_first, with_token).status().code(),
            absl::StatusCode::kCancelled);

  v1::GenerateRequest named = Long();
  named.set_request_id("cancel-me");
  absl::Status cancel = absl::UnknownError("not called");
  GenerateCallbacks cancel_rpc;
  cancel_rpc.on_delta = [&](const v1::TokenDelta&) {
    if (absl::IsUnknown(cancel)) cancel = client_->Cancel("cancel-me");
  };
  EXPECT_EQ(client_->Generate(named, cancel_rpc).status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(cancel.ok()) << cancel;

  EXPECT_EQ(client_->Generate(Long(), {}, CallOptions::WithTimeout(absl::Milliseconds(1))).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // The server is still fine.
  auto health = client_->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ServerTest, PythonClient) {
  ProcessResult r = RunPythonClient(server_->grpc_address(),
                                    {"generate", "--prompt", kPrompt, "--max_tokens", "30"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, kContinuation)) << r.out;
  EXPECT_TRUE(Contains(r.out, "generated 30 tokens]")) << r.out;
  r = RunPythonClient(server_->grpc_address(), {"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = RunPythonClient(server_->grpc_address(), {"info"});
  EXPECT_TRUE(Contains(r.out, "architecture: \"llama\"")) << r.out;
}

TEST(ServerLifecycleTest, DrainsAndExitsZeroOnSigtermWithAStreamInFlight) {
  auto server = StartServer();
  ASSERT_TRUE(server.ok()) << server.status();
  HeadroomClient client((*server)->grpc_address());
  std::atomic<bool> signalled{false};
  GenerateCallbacks cb;
  cb.on_delta = [&](const v1::TokenDelta&) {
    if (!signalled.exchange(true)) {
      EXPECT_TRUE((*server)->Signal(SIGTERM).ok());
    }
  };
  v1::GenerateRequest request;
  request.set_text(kPrompt);
  request.mutable_stop()->set_max_tokens(100);
  auto result = client.Generate(request, cb, CallOptions::WithTimeout(absl::Seconds(60)));
  // Draining lets the running request finish (or ends it with UNAVAILABLE).
  EXPECT_TRUE(result.ok() || absl::IsUnavailable(result.status())) << result.status();
  auto code = (*server)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace hr::testing
