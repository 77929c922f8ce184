// Runs the real headroom-generate binary on stories260K and on the SeqPE
// demo model (models/seqpe_demo).
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

struct CliRun {
  int exit_code;
  std::string out;  // stdout and stderr together
};

CliRun RunGenerate(const std::string& flags) {
  const std::string cmd = std::string(HR_GENERATE_BINARY) + " --model " + hr::testing::SharedDir() +
                          "/models/stories260K.gguf " + flags + " 2>&1";
  CliRun r{-1, ""};
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

const char kDragon[] =
    "Once upon a time, a little dragon named Benny. Benny loved to play with his toys and run around.";

TEST(GenerateCliTest, ReproducesTheReferenceStoryUnderEveryAttention) {
  for (const char* policy : {"contiguous", "full", "window", "longheads"}) {
    CliRun r = RunGenerate(std::string("--prompt 'Once upon a time, a little dragon' --max_tokens 30 --policy ") +
                        policy);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find(kDragon), std::string::npos) << policy << ": " << r.out;
  }
}

TEST(GenerateCliTest, DumpsSelectedChunksPerLayerAndHead) {
  const std::string path = hr::testing::MakeTempDir("dump") + "/selection.jsonl";
  CliRun r = RunGenerate("--prompt 'Once upon a time' --max_tokens 40 --policy longheads "
                      "--chunk_size 4 --atten_length 16 --dump_selection " + path);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::istringstream in(hr::testing::ReadFileOrDie(path));
  std::string line;
  int lines = 0, long_selections = 0;
  while (std::getline(in, line)) {
    ++lines;
    ASSERT_EQ(line.rfind("{\"layer\":", 0), 0u) << line;
    ASSERT_NE(line.find("\"chunks\":[0"), std::string::npos) << line;  // the sink is always read
    // With 4 slots, a query past the 4th chunk reads exactly 4 chunks.
    const size_t commas = std::count(line.begin(), line.end(), ',');
    if (commas == 3 + 3) ++long_selections;  // layer, head, pos + 3 between 4 chunks
  }
  // 40 generated tokens (the last is sampled, not fed back), 5 layers, 8 heads.
  EXPECT_EQ(lines, 39 * 5 * 8);
  EXPECT_GT(long_selections, 0);
}

// The last line of a --print_ids run: the generated ids.
std::string LastLine(const std::string& out) {
  std::string s = out;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.substr(s.rfind('\n') + 1);
}

TEST(GenerateCliTest, SeqPeModelContiguousEqualsThePagedFullPolicy) {
  const std::string dir = hr::testing::MakeTempDir("seqpe_cli");
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "The old boat drifted past the quiet harbor at noon. ";
  {
    std::FILE* f = std::fopen((dir + "/prompt.txt").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(prompt.c_str(), f);
    std::fclose(f);
  }
  const std::string flags = "--model " + hr::testing::SourceDir() + "/models/seqpe_demo --prompt_file " +
                            dir + "/prompt.txt --max_tokens 12 --print_ids --policy ";
  const CliRun contiguous = RunGenerate(flags + "contiguous");
  ASSERT_EQ(contiguous.exit_code, 0) << contiguous.out;
  const CliRun full = RunGenerate(flags + "full");
  ASSERT_EQ(full.exit_code, 0) << full.out;
  EXPECT_NE(full.out.find("[attention: full, chunk 32, window 256"), std::string::npos) << full.out;
  // Greedy ids of the plain SeqPE attention (contiguous cache) and of the
  // paged cache's `full` policy over ~400 tokens, past the trained 256.
  EXPECT_EQ(LastLine(full.out), LastLine(contiguous.out));
  EXPECT_FALSE(LastLine(full.out).empty());
  const CliRun longheads = RunGenerate(flags + "longheads");
  EXPECT_EQ(longheads.exit_code, 0) << longheads.out;
  const CliRun chunked = RunGenerate(flags + "longheads --prefill_selection chunk");
  EXPECT_NE(chunked.exit_code, 0);
  EXPECT_NE(chunked.out.find("prefill_selection"), std::string::npos) << chunked.out;
}

TEST(GenerateCliTest, BadFlagsGiveAClearError) {
  CliRun r = RunGenerate("--policy nonsense --prompt x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("unknown attention policy 'nonsense'"), std::string::npos) << r.out;
  r = RunGenerate("--policy window --chunk_size 64 --atten_length 100 --prompt x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("atten_length"), std::string::npos) << r.out;
  r = RunGenerate("--model /nonexistent.gguf --prompt x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("/nonexistent.gguf"), std::string::npos) << r.out;
}

}  // namespace
