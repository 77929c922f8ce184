// The real headroom-server serving the SeqPE demo model (models/seqpe_demo,
// GPT-2 + SeqPE attn_scalar, trained at 256 tokens) on loopback: greedy
// outputs identical to the engine's single-sequence Generate over the same
// model for every policy, prompts past the trained length, the prefix cache
// (adopted SeqPE blocks give the same output), the options SeqPE lacks
// refused with their codes while the server keeps serving, ModelInfo and the
// position-table metrics.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "headroom/v1/headroom.grpc.pb.h"
#include "server/engine/generator.h"
#include "server/engine/served_model.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "tests/test_util.h"
#include "tests/util/http_get.h"
#include "tests/util/prometheus_text.h"
#include "tests/util/suite_server.h"

namespace hr {
namespace {

namespace pb = ::headroom::v1;

// Large enough that a request may ask for more positions than the
// encoder's 6-digit budget (10^6) without sending them.
constexpr int kMaxNewTokens = 2'000'000;

std::string ModelPath() { return testing::SourceDir() + "/models/seqpe_demo"; }

// A document of `sentences` sentences (about 9 tokens each).
std::string Document(int sentences) {
  static const char* const kSentences[] = {
      "The old boat drifted past the quiet harbor at noon. ",
      "A small bird sang on the fence near the garden. ",
      "Many people walked along the river after the rain. ",
      "The baker opened his shop before the sun came up. ",
  };
  std::string text;
  for (int i = 0; i < sentences; ++i) text += kSentences[(i * 7 + i / 4) % 4];
  return text;
}

struct Stream {
  grpc::Status status;
  std::vector<int32_t> ids;
  pb::Finished finished;
};

Stream RunGenerate(pb::Headroom::Stub& stub, const pb::GenerateRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  Stream s;
  auto reader = stub.Generate(&context, request);
  pb::GenerateResponse response;
  while (reader->Read(&response)) {
    s.ids.insert(s.ids.end(), response.delta().ids().begin(), response.delta().ids().end());
    if (response.has_finished()) s.finished = response.finished();
  }
  s.status = reader->Finish();
  return s;
}

pb::GenerateRequest Request(const std::vector<int32_t>& prompt, int max_tokens,
                            pb::AttentionPolicy policy) {
  pb::GenerateRequest r;
  r.mutable_tokens()->mutable_ids()->Add(prompt.begin(), prompt.end());
  r.mutable_stop()->set_max_tokens(max_tokens);
  r.mutable_stop()->set_ignore_eos(true);
  r.mutable_long_context()->set_policy(policy);
  return r;
}

class SeqPeServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_ = testing::SuiteServer::Start(
        {testing::BuildDir() + "/server/headroom-server", "--model", ModelPath(), "--grpc_address",
         "127.0.0.1:0", "--metrics_address", "127.0.0.1:0", "--threads_per_worker", "1",
         "--max_new_tokens", absl::StrCat(kMaxNewTokens)},
        ModelPath());
  }
  static void TearDownTestSuite() { suite_.reset(); }

  void SetUp() override { ASSERT_TRUE(suite_->ok()) << suite_->error; }

  static pb::Headroom::Stub& stub() { return *suite_->stub; }

  static std::vector<int32_t> Tokens(const std::string& text) {
    auto ids = suite_->model->tokenizer->Encode(text, /*add_bos=*/true);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<int32_t>{};
  }

  // The engine's single-sequence greedy generation with the server's
  // defaults and `policy`.
  static std::vector<int32_t> Reference(const std::vector<int32_t>& prompt, int max_tokens,
                                        AttentionPolicy policy) {
    const ServedModel& served = *suite_->model->model;
    LongContextParams params = DefaultLongContextParams(served.config());
    params.policy = policy;
    BlockPool pool(served.kv_geometry(), KvDType::kF32, 256LL << 20);
    auto sequence = served.NewSequence(params, &pool);
    EXPECT_TRUE(sequence.ok()) << sequence.status();
    if (!sequence.ok()) return {};
    std::unique_ptr<CausalLm> model = served.NewInstance();
    GenerateOptions options;
    options.max_tokens = max_tokens;
    options.stop_at_eos = false;
    auto result = Generate(*model, suite_->model->tokenizer.get(), prompt, options, nullptr,
                           sequence->get());
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->tokens : std::vector<int32_t>{};
  }

  static std::map<std::string, testing::MetricFamily> Metrics() {
    auto page = testing::HttpGet(absl::StrCat("http://", suite_->server->metrics_address(), "/metrics"));
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) return {};
    auto families = testing::ParsePrometheusText(*page);
    EXPECT_TRUE(families.ok()) << families.status();
    return families.ok() ? *families : std::map<std::string, testing::MetricFamily>{};
  }

  static inline std::unique_ptr<testing::SuiteServer> suite_;
};

TEST_F(SeqPeServerTest, ModelInfoDescribesTheSeqPeModel) {
  pb::ModelInfo info;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  ASSERT_TRUE(stub().GetModelInfo(&context, pb::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.model_name(), "seqpe_demo");
  EXPECT_EQ(info.architecture(), "gpt2_seqpe");
  EXPECT_EQ(info.trained_context(), 256);
  EXPECT_EQ(info.n_kv_heads(), info.n_heads());
  EXPECT_EQ(info.vocab_size(), suite_->model->tokenizer->vocab_size());
  EXPECT_EQ(info.long_context_defaults().atten_length(), 256);
  EXPECT_EQ(info.long_context_defaults().chunk_size(), 32);
}

// Every policy, within and past the trained 256 tokens: what the server
// streams is what the engine computes alone (batching, chunked prefill
// steps and the worker change nothing).
TEST_F(SeqPeServerTest, GreedyOutputEqualsTheEngineForEveryPolicy) {
  constexpr int kMaxTokens = 12;
  for (int sentences : {10, 70}) {  // about 100 and 650 tokens
    const std::vector<int32_t> prompt = Tokens(Document(sentences));
    for (auto [policy, name] : {std::pair{pb::ATTENTION_POLICY_FULL, AttentionPolicy::kFull},
                                std::pair{pb::ATTENTION_POLICY_WINDOW, AttentionPolicy::kWindow},
                                std::pair{pb::ATTENTION_POLICY_LONGHEADS,
                                          AttentionPolicy::kLongHeads}}) {
      SCOPED_TRACE(absl::StrCat(prompt.size(), " prompt tokens, ", std::string(PolicyName(name))));
      const Stream s = RunGenerate(stub(), Request(prompt, kMaxTokens, policy));
      ASSERT_TRUE(s.status.ok()) << s.status.error_message();
      EXPECT_EQ(s.ids, Reference(prompt, kMaxTokens, name));
      EXPECT_EQ(s.finished.usage().prompt_tokens(), static_cast<int64_t>(prompt.size()));
    }
  }
  // The positions the encoder computed are cached and reported.
  const auto metrics = Metrics();
  EXPECT_GE(testing::SumSamples(metrics, "headroom_seqpe_position_table_rows",
                                "headroom_seqpe_position_table_rows"),
            600);
  EXPECT_GT(testing::SumSamples(metrics, "headroom_seqpe_position_table_bytes",
                                "headroom_seqpe_position_table_bytes"),
            0);
}

TEST_F(SeqPeServerTest, PrefixCacheReusesSeqPeChunksWithTheSameOutput) {
  const std::vector<int32_t> prompt = Tokens(Document(40) + "The end of the first story.");
  const Stream first = RunGenerate(stub(), Request(prompt, 8, pb::ATTENTION_POLICY_LONGHEADS));
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  const Stream second = RunGenerate(stub(), Request(prompt, 8, pb::ATTENTION_POLICY_LONGHEADS));
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_GE(second.finished.usage().cached_tokens(), 32 * (static_cast<int64_t>(prompt.size()) / 32 - 1));
  EXPECT_EQ(second.ids, first.ids);
  EXPECT_EQ(second.ids, Reference(prompt, 8, AttentionPolicy::kLongHeads));
}

TEST_F(SeqPeServerTest, OptionsSeqPeLacksAreRefusedAndTheServerKeepsServing) {
  const std::vector<int32_t> prompt = Tokens(Document(3));

  pb::GenerateRequest chunked = Request(prompt, 4, pb::ATTENTION_POLICY_LONGHEADS);
  chunked.mutable_long_context()->set_prefill_selection(pb::PREFILL_SELECTION_CHUNK);
  Stream s = RunGenerate(stub(), chunked);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(s.status.error_message().find("long_context.prefill_selection"), std::string::npos)
      << s.status.error_message();

  // full reads absolute positions: past the 6-digit budget it is refused
  // before any work, naming the budget (window and longheads read window
  // positions only, so their sequences have no such limit).
  s = RunGenerate(stub(), Request(prompt, 1'000'001, pb::ATTENTION_POLICY_FULL));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(s.status.error_message().find("budget of 1000000"), std::string::npos)
      << s.status.error_message();

  const Stream ok = RunGenerate(stub(), Request(prompt, 4, pb::ATTENTION_POLICY_FULL));
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.ids.size(), 4u);
}

}  // namespace
}  // namespace hr
