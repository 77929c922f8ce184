// hr_client against fake-headroom-server (see its header for its scripted
// behaviour): streaming order, every RPC, error codes, cancellation and
// deadlines.
#include <signal.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "client/headroom_client.h"
#include "gtest/gtest.h"
#include "tests/util/server_process.h"

namespace hr::client {
namespace {

namespace v1 = ::headroom::v1;
using grpc::health::v1::HealthCheckResponse;
using hr::testing::ServerProcess;

class FakeServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = ServerProcess::Start({.argv = {HR_FAKE_SERVER_BINARY, "--grpc_address", "127.0.0.1:0"}});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<HeadroomClient>(server_->grpc_address());
  }

  static v1::GenerateRequest Text(const std::string& text, int max_tokens = 5) {
    v1::GenerateRequest r;
    r.set_text(text);
    r.mutable_stop()->set_max_tokens(max_tokens);
    return r;
  }

  static ServerProcess* server_;
  std::unique_ptr<HeadroomClient> client_;
};
ServerProcess* FakeServerTest::server_ = nullptr;

TEST_F(FakeServerTest, GenerateStreamsProgressThenDeltasThenFinished) {
  std::vector<std::string> events;
  std::vector<int64_t> processed;
  std::vector<int32_t> ids;
  std::string text;
  int responses = 0;
  GenerateCallbacks cb;
  cb.on_response = [&](const v1::GenerateResponse& r) {
    ++responses;
    EXPECT_EQ(r.request_id(), "mine");
  };
  cb.on_progress = [&](const v1::PrefillProgress& p) {
    events.push_back("progress");
    processed.push_back(p.processed_tokens());
    EXPECT_EQ(p.total_tokens(), 10);
  };
  cb.on_delta = [&](const v1::TokenDelta& d) {
    events.push_back("delta");
    ids.insert(ids.end(), d.ids().begin(), d.ids().end());
    text += d.text();
  };
  cb.on_finished = [&](const v1::Finished&) { events.push_back("finished"); };
  v1::GenerateRequest request = Text("one two three four five six seven eight nine", 5);
  request.set_request_id("mine");
  auto result = client_->Generate(request, cb);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->request_id, "mine");
  EXPECT_EQ(result->finished.reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(result->finished.usage().prompt_tokens(), 10);  // 9 words + BOS
  EXPECT_EQ(result->finished.usage().generated_tokens(), 5);
  EXPECT_EQ(processed, (std::vector<int64_t>{4, 8, 10}));
  EXPECT_EQ(ids, (std::vector<int32_t>{100, 101, 102, 103, 104}));
  EXPECT_EQ(text, " w0 w1 w2 w3 w4");
  // Deltas of 1, 2, 2 tokens.
  EXPECT_EQ(events, (std::vector<std::string>{"progress", "progress", "progress", "delta", "delta",
                                              "delta", "finished"}));
  EXPECT_EQ(responses, 7);
}

TEST_F(FakeServerTest, ServerAssignsARequestIdWhenNoneIsSent) {
  auto result = client_->Generate(Text("a"), {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->request_id.rfind("fake-", 0), 0u) << result->request_id;
}

TEST_F(FakeServerTest, ErrorsKeepTheServersCodeAndMessage) {
  auto result = client_->Generate(Text(""), {});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "input is empty");
  absl::Status cancel = client_->Cancel("no-such-request");
  EXPECT_EQ(cancel.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cancel.message(), "no request 'no-such-request'");
}

TEST_F(FakeServerTest, CancelTokenEndsAStreamFromInsideACallback) {
  CancelToken token;
  GenerateCallbacks cb;
  cb.on_progress = [&](const v1::PrefillProgress&) { token.Cancel(); };
  CallOptions options;
  options.cancel = &token;
  auto result = client_->Generate(Text("hang"), cb, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_TRUE(token.cancelled());
  // A cancelled token fails later calls at once, without the server.
  EXPECT_EQ(client_->GetModelInfo(options).status().code(), absl::StatusCode::kCancelled);
}

TEST_F(FakeServerTest, CancelRpcEndsTheNamedStream) {
  GenerateCallbacks cb;
  absl::Status cancel_status = absl::UnknownError("not called");
  cb.on_progress = [&](const v1::PrefillProgress&) { cancel_status = client_->Cancel("to-cancel"); };
  v1::GenerateRequest request = Text("hang");
  request.set_request_id("to-cancel");
  auto result = client_->Generate(request, cb);
  EXPECT_TRUE(cancel_status.ok()) << cancel_status;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
}

TEST_F(FakeServerTest, DeadlineEndsAStream) {
  int progress = 0;
  GenerateCallbacks cb;
  cb.on_progress = [&](const v1::PrefillProgress&) { ++progress; };
  auto result = client_->Generate(Text("hang"), cb, CallOptions::WithTimeout(absl::Milliseconds(300)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_EQ(progress, 1);
}

TEST_F(FakeServerTest, TokenizeDetokenizeInfoHealth) {
  v1::TokenizeRequest t;
  t.set_text("ab c");
  auto tok = client_->Tokenize(t);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(std::vector<int32_t>(tok->ids().begin(), tok->ids().end()),
            (std::vector<int32_t>{1, 3 + ('a' + 'b') % 509, 3 + 'c' % 509}));
  EXPECT_EQ(tok->pieces(2), "\xe2\x96\x81" "c");
  t.set_add_bos(false);
  EXPECT_EQ(client_->Tokenize(t)->ids_size(), 2);

  v1::DetokenizeRequest d;
  d.add_ids(5);
  d.add_ids(6);
  auto text = client_->Detokenize(d);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->text(), "<5> <6>");

  auto info = client_->GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model_name(), "fake");
  EXPECT_EQ(info->vocab_size(), 512);

  auto health = client_->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);
}

TEST_F(FakeServerTest, ConcurrentCallsShareOneClient) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto r = client_->Generate(Text("x y", 3 + t), {});
      if (r.ok() && r->finished.usage().generated_tokens() == 3 + t) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
}

TEST(ClientTest, UnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there in a test environment.
  HeadroomClient client("127.0.0.1:1");
  EXPECT_EQ(client.Health(CallOptions::WithTimeout(absl::Seconds(10))).status().code(),
            absl::StatusCode::kUnavailable);
  // wait_for_ready turns that into waiting until the deadline.
  CallOptions wait = CallOptions::WithTimeout(absl::Milliseconds(200));
  wait.wait_for_ready = true;
  EXPECT_EQ(client.GetModelInfo(wait).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ClientTest, FromGrpcStatusKeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  const absl::Status s = FromGrpcStatus(grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "input 9 > 8"));
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.message(), "input 9 > 8");
}

TEST(ClientTest, DrainingServerExitsZeroAndThenIsUnavailable) {
  auto server = ServerProcess::Start({.argv = {HR_FAKE_SERVER_BINARY, "--grpc_address", "127.0.0.1:0"}});
  ASSERT_TRUE(server.ok()) << server.status();
  HeadroomClient client((*server)->grpc_address());
  ASSERT_TRUE(client.GetModelInfo().ok());
  auto code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(client.Health(CallOptions::WithTimeout(absl::Seconds(10))).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace hr::client
