// The `headroom` CLI and the Python example client against
// fake-headroom-server, whose scripted answers (see its header) make every
// line of output predictable.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/e2e_util.h"
#include "tests/test_util.h"

namespace hr::testing {
namespace {

class CliFakeServerTest : public ::testing::Test {
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
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  ProcessResult Cli(const std::string& subcommand, std::vector<std::string> args,
                    const std::string& stdin_text = "") {
    return RunCli(server_->grpc_address(), subcommand, std::move(args), stdin_text);
  }
  static ServerProcess* server_;
};
ServerProcess* CliFakeServerTest::server_ = nullptr;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A line of the bench table.
std::string Row(const std::string& label, const std::string& value) {
  return absl::StrFormat("%-40s %10s\n", label, value);
}

std::string WriteTempFile(const std::string& name, const std::string& contents) {
  const std::string path = MakeTempDir("cli") + "/" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST_F(CliFakeServerTest, GenerateStreamsTextToStdoutAndASummaryToStderr) {
  ProcessResult r = Cli("generate", {"--text", "a b c", "--max_tokens", "5"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, " w0 w1 w2 w3 w4");  // not a terminal: no newline added
  EXPECT_TRUE(Contains(r.err, "[prompt 4 tokens (0 cached), generated 5 tokens; TTFT ")) << r.err;
  EXPECT_TRUE(Contains(r.err, "; finish: length]\n")) << r.err;
  EXPECT_FALSE(Contains(r.err, "prefill [")) << "no progress bar when stderr is not a terminal";
}

TEST_F(CliFakeServerTest, GenerateReadsStdinOrAFile) {
  ProcessResult r = Cli("generate", {"--max_tokens", "1"}, "x y\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, " w0");
  EXPECT_TRUE(Contains(r.err, "[prompt 3 tokens")) << r.err;

  const std::string path = WriteTempFile("prompt.txt", "p q r s t");
  r = Cli("generate", {"--file", path, "--max_tokens", "2", "--bos=false"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "[prompt 5 tokens")) << r.err;
}

TEST_F(CliFakeServerTest, ForcedProgressBarIsCarriageReturnUpdated) {
  ProcessResult r = Cli("generate", {"--text", "1 2 3 4 5 6 7 8 9", "--max_tokens", "1", "--progress"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "\rprefill [############------------------]  40% 4/10 tokens")) << r.err;
  EXPECT_TRUE(Contains(r.err, "\rprefill [##############################] 100% 10/10 tokens\n")) << r.err;
}

TEST_F(CliFakeServerTest, RepeatedAndCommaSeparatedStopStrings) {
  ProcessResult r = Cli("generate", {"--text", "a", "--max_tokens", "9", "--stop", "zz", "--stop= w3,yy"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, " w0 w1 w2");
  EXPECT_TRUE(Contains(r.err, "generated 3 tokens")) << r.err;
  EXPECT_TRUE(Contains(r.err, "finish: stop_string]")) << r.err;
}

TEST_F(CliFakeServerTest, GenerateJsonPrintsOneObjectPerStreamMessage) {
  ProcessResult r = Cli("generate", {"--text", "a", "--max_tokens", "3", "--json", "--logprobs", "2",
                                     "--request_id", "json-1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<nlohmann::json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 4u) << r.out;  // progress, delta(1), delta(2), finished
  for (const auto& j : lines) EXPECT_EQ(j["request_id"], "json-1");
  EXPECT_EQ(lines[0]["progress"]["total_tokens"], "2");  // int64 is a JSON string
  EXPECT_EQ(lines[2]["delta"]["ids"], nlohmann::json::array({101, 102}));
  EXPECT_EQ(lines[2]["delta"]["logprobs"][0]["top"].size(), 2u);
  EXPECT_EQ(lines[3]["finished"]["reason"], "FINISH_REASON_LENGTH");
  EXPECT_EQ(lines[3]["finished"]["usage"]["generated_tokens"], "3");
}

TEST_F(CliFakeServerTest, ErrorsPrintTheCodeNameAndMessageAndExitOne) {
  ProcessResult r = Cli("generate", {"--text", " "});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: INVALID_ARGUMENT: input is empty\n");
  r = Cli("cancel", {"--request_id", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: NOT_FOUND: no request 'nope'\n");
  r = Cli("generate", {"--text", "a", "--policy", "bogus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "error: INVALID_ARGUMENT: --policy: unknown value 'bogus'")) << r.err;
  r = Cli("frobnicate", {});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "unknown subcommand or extra argument 'frobnicate'")) << r.err;
}

TEST_F(CliFakeServerTest, TokenizeWithAndWithoutPieces) {
  ProcessResult r = Cli("tokenize", {"--text", "ab c"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 198 102\n");
  r = Cli("tokenize", {"--pieces", "--bos=false"}, "ab c");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "198\t\xe2\x96\x81" "ab\n102\t\xe2\x96\x81" "c\n");
  r = Cli("detokenize", {"--ids", "5,6"});
  EXPECT_EQ(r.out, "<5> <6>\n");
}

TEST_F(CliFakeServerTest, InfoHealthCancel) {
  ProcessResult r = Cli("info", {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "model          fake\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "long context   longheads, chunk 32, atten_length 256, summary bound")) << r.out;
  r = Cli("info", {"--json"});
  EXPECT_EQ(nlohmann::json::parse(r.out)["vocab_size"], 512);
  r = Cli("health", {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = Cli("cancel", {});
  EXPECT_EQ(r.err, "error: INVALID_ARGUMENT: cancel needs --request_id\n");
}

TEST(CliTest, HealthOfAnUnreachableServerFailsFastWithExitOne) {
  ProcessResult r = RunCli("127.0.0.1:1", "health", {});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.err.rfind("error: UNAVAILABLE: ", 0) == 0) << r.err;
}

TEST_F(CliFakeServerTest, BenchReportsEveryMetric) {
  const std::string json_path = MakeTempDir("bench") + "/bench.json";
  ProcessResult r = Cli("bench", {"--num_prompts", "20", "--concurrency", "4", "--request_rate", "500",
                                  "--input_tokens", "16", "--output_tokens", "9", "--json_out", json_path});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  for (const std::string& row :
       {Row("Successful requests:", "20"), Row("Total input tokens:", "320"),
        Row("Total generated tokens:", "180"), std::string("Mean TTFT (ms):"),
        std::string("P99 TPOT (ms):"), std::string("Median ITL (ms):"), std::string("P90 E2E (ms):")}) {
    EXPECT_TRUE(Contains(r.out, row)) << row << "\n" << r.out;
  }
  const nlohmann::json j = nlohmann::json::parse(ReadFileOrDie(json_path));
  EXPECT_EQ(j["completed"], 20);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["total_input_tokens"], 320);   // synthetic prompts of exactly 16 ids
  EXPECT_EQ(j["total_output_tokens"], 180);  // 9 each
  EXPECT_EQ(j["ttft"]["count"], 20);
  EXPECT_EQ(j["tpot"]["count"], 20);
  EXPECT_EQ(j["itl"]["count"], 20 * 4);  // 9 tokens arrive in 5 deltas (1, 2, 2, 2, 2)
  EXPECT_GT(j["request_throughput"].get<double>(), 0.0);
}

TEST_F(CliFakeServerTest, BenchFromAPromptFileCountsFailuresAndExitsNonZero) {
  // Cycled, blank lines skipped: "a b" (3 tokens with BOS) completes,
  // "hang" runs into its deadline.
  const std::string path = WriteTempFile("prompts.txt", "a b\n\nhang\n");
  ProcessResult r = Cli("bench", {"--num_prompts", "4", "--prompt_file", path, "--output_tokens", "2",
                                  "--timeout_s", "0.5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.substr(r.err.find("error:")), "error: UNKNOWN: 2 of 4 requests failed\n") << r.err;
  EXPECT_TRUE(Contains(r.out, Row("Successful requests:", "2"))) << r.out;
  EXPECT_TRUE(Contains(r.out, Row("Failed requests:", "2"))) << r.out;
  EXPECT_TRUE(Contains(r.out, "2 x DEADLINE_EXCEEDED: Deadline Exceeded\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, Row("Total input tokens:", "6"))) << r.out;
  r = Cli("bench", {"--num_prompts", "2", "--input_tokens", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "error: INVALID_ARGUMENT: input_tokens must be at least 1")) << r.err;
}

TEST_F(CliFakeServerTest, PythonClientGeneratesAndDescribes) {
  ProcessResult r = RunPythonClient(server_->grpc_address(),
                                    {"generate", "--prompt", "a b c", "--max_tokens", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, " w0 w1 w2 w3\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "finish: FINISH_REASON_LENGTH; prompt 4 tokens (0 cached), generated 4"))
      << r.out;
  r = RunPythonClient(server_->grpc_address(), {"info"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "model_name: \"fake\"")) << r.out;
  r = RunPythonClient(server_->grpc_address(), {"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = RunPythonClient(server_->grpc_address(), {"generate", "--prompt", ""});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.err, "INVALID_ARGUMENT: input is empty")) << r.err;
}

}  // namespace
}  // namespace hr::testing
