// The CLI's pure helpers: repeatable flags, request building, and what
// `headroom generate` prints on stderr.
#include <string>
#include <vector>

#include "client/cli_args.h"
#include "client/generate_display.h"
#include "client/request_builder.h"
#include "gtest/gtest.h"

namespace hr::client {
namespace {

using Args = std::vector<std::string>;
namespace v1 = ::headroom::v1;

TEST(MergeRepeatedFlagTest, JoinsEveryFormIntoOneFlagAtTheFirstPlace) {
  EXPECT_EQ(MergeRepeatedFlag({"headroom", "generate", "--stop", "a", "--max_tokens=3", "--stop=b,c",
                               "-stop", "d", "-stop=e"},
                              "stop"),
            (Args{"headroom", "generate", "--stop=a,b,c,d,e", "--max_tokens=3"}));
}

TEST(MergeRepeatedFlagTest, LeavesOtherFlagsAndArgumentsAfterDoubleDashAlone) {
  EXPECT_EQ(MergeRepeatedFlag({"headroom", "--stopper=x", "--stop_x", "y"}, "stop"),
            (Args{"headroom", "--stopper=x", "--stop_x", "y"}));
  EXPECT_EQ(MergeRepeatedFlag({"headroom", "--stop=a", "--", "--stop=b"}, "stop"),
            (Args{"headroom", "--stop=a", "--", "--stop=b"}));
  // A value-less last occurrence is left for Abseil's error; empty values drop.
  EXPECT_EQ(MergeRepeatedFlag({"headroom", "--stop=", "--stop"}, "stop"),
            (Args{"headroom", "--stop=", "--stop"}));
  EXPECT_EQ(MergeRepeatedFlag({"headroom"}, "stop"), (Args{"headroom"}));
}

TEST(PrintablePieceTest, EscapesControlBytesAndKeepsUtf8) {
  EXPECT_EQ(PrintablePiece("\xe2\x96\x81" "ab"), "\xe2\x96\x81" "ab");
  EXPECT_EQ(PrintablePiece("a\nb\tc\rd\\e"), "a\\nb\\tc\\rd\\\\e");
  EXPECT_EQ(PrintablePiece(std::string("\x01\x7f", 2)), "\\x01\\x7f");
  EXPECT_EQ(PrintablePiece(std::string(1, '\0')), "\\x00");
}

TEST(BuildGenerateRequestTest, DefaultsLeaveEveryFieldToTheServer) {
  auto r = BuildGenerateRequest(GenerateFlags{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_add_bos());
  EXPECT_FALSE(r->sampling().has_top_p());
  EXPECT_FALSE(r->sampling().has_repetition_penalty());
  EXPECT_FALSE(r->stop().has_max_tokens());
  EXPECT_EQ(r->long_context().policy(), v1::ATTENTION_POLICY_UNSPECIFIED);
  EXPECT_EQ(r->priority(), v1::PRIORITY_UNSPECIFIED);
  EXPECT_EQ(r->input_case(), v1::GenerateRequest::INPUT_NOT_SET);
}

TEST(BuildGenerateRequestTest, CopiesEveryFlag) {
  GenerateFlags f;
  f.max_tokens = 7;
  f.temperature = 0.5f;
  f.top_p = 0.9f;
  f.top_k = 40;
  f.min_p = 0.1f;
  f.repetition_penalty = 1.2f;
  f.seed = 99;
  f.stop = {"x", "y"};
  f.ignore_eos = true;
  f.add_bos = false;
  f.policy = "window";
  f.chunk_size = 16;
  f.atten_length = 64;
  f.summary = "mean";
  f.gqa_selection = "kv_head";
  f.prefill_selection = "chunk";
  f.priority = "high";
  f.request_id = "req-1";
  f.logprobs = 3;
  auto r = BuildGenerateRequest(f);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->add_bos());
  EXPECT_TRUE(r->has_add_bos());
  EXPECT_EQ(r->sampling().temperature(), 0.5f);
  EXPECT_EQ(r->sampling().top_p(), 0.9f);
  EXPECT_EQ(r->sampling().top_k(), 40);
  EXPECT_EQ(r->sampling().min_p(), 0.1f);
  EXPECT_EQ(r->sampling().repetition_penalty(), 1.2f);
  EXPECT_EQ(r->sampling().seed(), 99u);
  EXPECT_EQ(r->stop().max_tokens(), 7);
  ASSERT_EQ(r->stop().stop_strings_size(), 2);
  EXPECT_EQ(r->stop().stop_strings(1), "y");
  EXPECT_TRUE(r->stop().ignore_eos());
  EXPECT_EQ(r->long_context().policy(), v1::ATTENTION_POLICY_WINDOW);
  EXPECT_EQ(r->long_context().chunk_size(), 16);
  EXPECT_EQ(r->long_context().atten_length(), 64);
  EXPECT_EQ(r->long_context().summary(), v1::SUMMARY_KIND_MEAN);
  EXPECT_EQ(r->long_context().gqa_selection(), v1::GQA_SELECTION_KV_HEAD);
  EXPECT_EQ(r->long_context().prefill_selection(), v1::PREFILL_SELECTION_CHUNK);
  EXPECT_EQ(r->priority(), v1::PRIORITY_HIGH);
  EXPECT_EQ(r->request_id(), "req-1");
  EXPECT_EQ(r->logprobs(), 3);
}

TEST(BuildGenerateRequestTest, UnknownNamesAreInvalidArgumentsNamingTheFlag) {
  GenerateFlags f;
  f.policy = "sliding";
  auto r = BuildGenerateRequest(f);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "--policy: unknown value 'sliding' (expected full | window | longheads)");
  f.policy = "";
  f.priority = "urgent";
  EXPECT_EQ(BuildGenerateRequest(f).status().code(), absl::StatusCode::kInvalidArgument);
  f.priority = "";
  f.summary = "max";
  EXPECT_NE(BuildGenerateRequest(f).status().message().find("--summary"), std::string::npos);
}

TEST(GenerateDisplayTest, ProgressBar) {
  v1::PrefillProgress p;
  p.set_processed_tokens(400);
  p.set_total_tokens(1000);
  EXPECT_EQ(FormatPrefillProgress(p, 10), "prefill [####------]  40% 400/1000 tokens");
  p.set_cached_tokens(100);
  p.set_processed_tokens(1000);
  EXPECT_EQ(FormatPrefillProgress(p, 4), "prefill [####] 100% 1000/1000 tokens (100 cached)");
  p.set_total_tokens(0);  // nothing to prefill counts as done, never divides by 0
  EXPECT_EQ(FormatPrefillProgress(p, 2).substr(0, 15), "prefill [##] 10");
}

TEST(GenerateDisplayTest, SummaryLine) {
  v1::Finished f;
  f.set_reason(v1::FINISH_REASON_STOP_STRING);
  f.mutable_usage()->set_prompt_tokens(12);
  f.mutable_usage()->set_cached_tokens(4);
  f.mutable_usage()->set_generated_tokens(11);
  EXPECT_EQ(FormatGenerateSummary(f, {.first_token_s = 0.5, .end_s = 2.5}),
            "[prompt 12 tokens (4 cached), generated 11 tokens; TTFT 500.0 ms, 5.0 tokens/s; "
            "finish: stop_string]");
  f.mutable_usage()->set_generated_tokens(1);  // no decode rate from one token
  EXPECT_EQ(FormatGenerateSummary(f, {.first_token_s = 0.25, .end_s = 0.25}),
            "[prompt 12 tokens (4 cached), generated 1 tokens; TTFT 250.0 ms; finish: stop_string]");
  f.mutable_usage()->set_generated_tokens(0);
  f.set_reason(v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(FormatGenerateSummary(f, {}), "[prompt 12 tokens (4 cached), generated 0 tokens; finish: length]");
}

}  // namespace
}  // namespace hr::client
