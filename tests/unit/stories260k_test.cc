// stories260K (a real pretrained LLaMA, ../shared/models) reproduces the
// reference greedy id sequences produced by llama2.c's run.c exactly.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/engine/generator.h"
#include "server/model/llama_model.h"
#include "server/model/loader.h"
#include "tests/test_util.h"

namespace hr {
namespace {

std::vector<int32_t> ReadIds(const std::string& path) {
  std::istringstream in(testing::ReadFileOrDie(path));
  std::vector<int32_t> ids;
  int32_t id;
  while (in >> id) ids.push_back(id);
  return ids;
}

class Stories260kTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadModel(testing::SharedDir() + "/models/stories260K.gguf");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = new LoadedModel(std::move(*loaded));
  }
  static void TearDownTestSuite() { delete model_; }
  static LoadedModel* model_;
};
LoadedModel* Stories260kTest::model_ = nullptr;

TEST_F(Stories260kTest, GreedyFromBosMatchesReference) {
  const auto want = ReadIds(testing::SharedDir() + "/models/stories260K.greedy512.ids");
  ASSERT_GT(want.size(), 100u);
  LlamaModel model(model_->weights);
  GenerateOptions opt;
  opt.max_tokens = 511;
  opt.stop_at_eos = false;
  opt.stop_token_ids = {1};  // run.c stops when the model emits BOS
  const std::vector<int32_t> prompt = {1};
  auto result = Generate(model, model_->tokenizer.get(), prompt, opt);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tokens, want);
  EXPECT_EQ(result->finish, FinishReason::kStopToken);
  // The streamed text is the reference text (run.c drops the first token's space).
  const std::string text = testing::ReadFileOrDie(testing::SharedDir() + "/models/stories260K.greedy512.txt");
  EXPECT_EQ(result->text.substr(0, 200), text.substr(0, 200));
}

TEST_F(Stories260kTest, DragonPromptMatchesReference) {
  const auto want = ReadIds(testing::SharedDir() + "/models/stories260K.dragon200.ids");
  ASSERT_EQ(want.size(), 200u);
  auto prompt = model_->tokenizer->Encode("Once upon a time, a little dragon", /*add_bos=*/true);
  ASSERT_TRUE(prompt.ok());
  ASSERT_EQ((*prompt)[0], 1);
  const size_t p = prompt->size();
  // The file's first p-1 ids are the forced prompt tokens after BOS.
  EXPECT_EQ(std::vector<int32_t>(prompt->begin() + 1, prompt->end()),
            std::vector<int32_t>(want.begin(), want.begin() + (p - 1)));
  LlamaModel model(model_->weights);
  GenerateOptions opt;
  opt.max_tokens = static_cast<int32_t>(want.size() - (p - 1));
  opt.stop_at_eos = false;
  for (int chunk : {512, 3}) {  // one prefill call, and prefill in chunks of 3
    opt.prefill_chunk_tokens = chunk;
    auto result = Generate(model, model_->tokenizer.get(), *prompt, opt);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->tokens, std::vector<int32_t>(want.begin() + (p - 1), want.end()))
        << "prefill chunk " << chunk;
  }
}

TEST_F(Stories260kTest, BatchedDecodeEqualsSingleSequence) {
  // Eight sequences with different prompts in one Forward call per step give
  // the same greedy tokens as each run alone.
  LlamaModel model(model_->weights);
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Lily and Tom went",
                                            "A big", "One day, a bird", "Sam", "The sun was hot",
                                            "Mom said"};
  const int steps = 24;
  std::vector<std::vector<int32_t>> alone;
  for (const auto& text : prompts) {
    auto ids = model_->tokenizer->Encode(text, true);
    ASSERT_TRUE(ids.ok());
    GenerateOptions opt;
    opt.max_tokens = steps;
    opt.stop_at_eos = false;
    auto r = Generate(model, nullptr, *ids, opt);
    ASSERT_TRUE(r.ok());
    alone.push_back(r->tokens);
  }
  std::vector<std::unique_ptr<SequenceAttention>> seqs;
  std::vector<std::vector<int32_t>> prompts_ids, batched(prompts.size());
  std::vector<BatchEntry> batch;
  for (const auto& text : prompts) {
    prompts_ids.push_back(*model_->tokenizer->Encode(text, true));
    seqs.push_back(model.NewSequence(256));
  }
  for (size_t i = 0; i < prompts.size(); ++i) batch.push_back({seqs[i].get(), prompts_ids[i], false});
  std::vector<float> logits;
  const int64_t vocab = model.config().vocab_size;
  for (int step = 0; step < steps; ++step) {
    ASSERT_TRUE(model.Forward(batch, &logits).ok());
    for (size_t i = 0; i < prompts.size(); ++i) {
      const float* row = logits.data() + i * vocab;
      batched[i].push_back(static_cast<int32_t>(std::max_element(row, row + vocab) - row));
      batch[i].tokens = {&batched[i].back(), 1};
    }
  }
  EXPECT_EQ(batched, alone);
}

TEST_F(Stories260kTest, RejectsOutOfVocabularyTokens) {
  LlamaModel model(model_->weights);
  auto seq = model.NewSequence(8);
  const std::vector<int32_t> bad = {1, 512};
  std::vector<float> logits;
  BatchEntry e{seq.get(), bad, false};
  absl::Status st = model.Forward({&e, 1}, &logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(seq->length(), 0);
}

TEST_F(Stories260kTest, CapacityOverflowIsResourceExhausted) {
  LlamaModel model(model_->weights);
  auto seq = model.NewSequence(4);
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  std::vector<float> logits;
  BatchEntry e{seq.get(), ids, false};
  EXPECT_EQ(model.Forward({&e, 1}, &logits).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(seq->length(), 0);
}

TEST_F(Stories260kTest, SeededSamplingIsReproducible) {
  LlamaModel model(model_->weights);
  GenerateOptions opt;
  opt.max_tokens = 40;
  opt.sampling.temperature = 0.9f;
  opt.sampling.top_p = 0.95f;
  opt.sampling.seed = 1234;
  const std::vector<int32_t> prompt = {1};
  auto a = Generate(model, model_->tokenizer.get(), prompt, opt);
  auto b = Generate(model, model_->tokenizer.get(), prompt, opt);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  opt.sampling.seed = 99;
  auto c = Generate(model, model_->tokenizer.get(), prompt, opt);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->tokens, c->tokens);
}

TEST_F(Stories260kTest, StopStringEndsTextBeforeIt) {
  LlamaModel model(model_->weights);
  GenerateOptions opt;
  opt.max_tokens = 200;
  opt.stop_at_eos = false;
  const std::vector<int32_t> prompt = {1};
  auto full = Generate(model, model_->tokenizer.get(), prompt, opt);
  ASSERT_TRUE(full.ok());
  // Stop at the second word of the greedy story.
  const std::string stop = full->text.substr(full->text.find(' ') + 1, 5);
  opt.stop_strings = {stop};
  auto cut = Generate(model, model_->tokenizer.get(), prompt, opt);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->finish, FinishReason::kStopString);
  EXPECT_EQ(cut->text, full->text.substr(0, full->text.find(stop)));
  EXPECT_LT(cut->tokens.size(), full->tokens.size());
}

}  // namespace
}  // namespace hr
