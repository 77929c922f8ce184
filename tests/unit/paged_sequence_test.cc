// PagedSequence on stories260K (a real pretrained model, trained at 512):
// the `full` policy equals plain causal attention; longheads equals full
// while the context fits the window; every policy runs far past 512 tokens;
// blocks are returned to the pool.
#include "server/longctx/paged_sequence.h"

#include <cmath>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/parallel.h"
#include "server/engine/generator.h"
#include "server/model/llama_model.h"
#include "server/model/loader.h"
#include "tests/test_util.h"

namespace hr {
namespace {

class PagedSequenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadModel(testing::SharedDir() + "/models/stories260K.gguf");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = new LoadedModel(std::move(*loaded));
    // A long document: the model's own greedy stories, sampled with seeds.
    LlamaModel llama(model_->weights);
    for (uint64_t seed = 1; tokens_.size() < 17000; ++seed) {
      GenerateOptions opt;
      opt.max_tokens = 400;
      opt.sampling.temperature = 0.8f;
      opt.sampling.seed = seed;
      opt.stop_at_eos = false;
      const std::vector<int32_t> bos = {1};
      auto r = Generate(llama, nullptr, bos, opt);
      ASSERT_TRUE(r.ok());
      if (tokens_.empty()) tokens_.push_back(1);
      tokens_.insert(tokens_.end(), r->tokens.begin(), r->tokens.end());
    }
  }
  static void TearDownTestSuite() { delete model_; }

  static KvGeometry Geometry() {
    const ModelConfig& c = model_->weights.config;
    return {c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim};
  }

  // Logits for every position of tokens[0, n), prefilled in calls of `step`.
  static std::vector<float> Run(SequenceAttention* seq, int64_t n, int64_t step) {
    LlamaModel llama(model_->weights);
    std::vector<float> all, logits;
    for (int64_t pos = 0; pos < n; pos += step) {
      const int64_t len = std::min(step, n - pos);
      BatchEntry e{seq, {tokens_.data() + pos, static_cast<size_t>(len)}, true};
      absl::Status st = llama.Forward({&e, 1}, &logits);
      EXPECT_TRUE(st.ok()) << st;
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  }

  static LoadedModel* model_;
  static std::vector<int32_t> tokens_;
};
LoadedModel* PagedSequenceTest::model_ = nullptr;
std::vector<int32_t> PagedSequenceTest::tokens_;

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double atol,
                 double rtol) {
  ASSERT_EQ(got.size(), want.size());
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]))) {
      if (++bad <= 5) ADD_FAILURE() << "logit " << i << ": got " << got[i] << ", want " << want[i];
    }
  }
  EXPECT_EQ(bad, 0) << "of " << want.size();
}

TEST_F(PagedSequenceTest, FullPolicyEqualsPlainCausalAttention) {
  const int64_t n = 700;
  LlamaModel llama(model_->weights);
  auto plain = llama.NewSequence(n);
  const std::vector<float> want = Run(plain.get(), n, 100);
  for (int32_t chunk : {16, 64, 7}) {
    BlockPool pool(Geometry(), KvDType::kF32, int64_t{1} << 30);
    LongContextParams params;
    params.policy = AttentionPolicy::kFull;
    params.chunk_size = chunk;
    auto seq = PagedSequence::Create(model_->weights.config, params, &pool);
    ASSERT_TRUE(seq.ok()) << seq.status();
    SCOPED_TRACE(::testing::Message() << "chunk " << chunk);
    ExpectClose(Run(seq->get(), n, 100), want, 1e-4, 1e-4);
  }
}

TEST_F(PagedSequenceTest, LongHeadsEqualsFullWithinTheWindow) {
  BlockPool pool(Geometry(), KvDType::kF32, int64_t{1} << 30);
  LongContextParams full;
  full.policy = AttentionPolicy::kFull;
  full.chunk_size = 32;
  LongContextParams lh = full;
  lh.policy = AttentionPolicy::kLongHeads;
  lh.atten_length = 512;
  auto a = PagedSequence::Create(model_->weights.config, full, &pool);
  auto b = PagedSequence::Create(model_->weights.config, lh, &pool);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Run(a->get(), 500, 64), Run(b->get(), 500, 64));  // bit-identical
}

// One long prefill call is attended in blocks of whole chunks over the union
// of their chunks (each chunk at a different slot distance for each range of
// the block; blocks end after PagedSequence's 1024-query threshold): the
// logits equal those of one-token calls, where every query is alone.
TEST_F(PagedSequenceTest, OneLongPrefillCallEqualsOneTokenCalls) {
  BlockPool pool(Geometry(), KvDType::kF32, int64_t{1} << 30);
  LongContextParams params;
  params.policy = AttentionPolicy::kFull;
  params.chunk_size = 32;
  auto a = PagedSequence::Create(model_->weights.config, params, &pool);
  auto b = PagedSequence::Create(model_->weights.config, params, &pool);
  ASSERT_TRUE(a.ok() && b.ok());
  // 1500 tokens: one block of 1024 + 32 queries, then the rest (partial last chunk).
  ExpectClose(Run(a->get(), 1500, 1500), Run(b->get(), 1500, 1), 1e-4, 1e-4);
}

TEST_F(PagedSequenceTest, EveryPolicyRunsFarBeyondTheTrainedLength) {
  // Mean next-token loss over the last 256 positions of a long document.
  auto tail_loss = [](const std::vector<float>& logits, int64_t n, int64_t vocab) {
    double loss = 0;
    for (int64_t p = n - 257; p < n - 1; ++p) {
      const float* row = logits.data() + p * vocab;
      double mx = -1e30, z = 0;
      for (int64_t t = 0; t < vocab; ++t) mx = std::max<double>(mx, row[t]);
      for (int64_t t = 0; t < vocab; ++t) z += std::exp(row[t] - mx);
      loss += -(row[tokens_[p + 1]] - mx - std::log(z));
    }
    return loss / 256;
  };
  const int64_t vocab = model_->weights.config.vocab_size;
  std::map<std::string, double> loss;
  // Full attention is quadratic: 8K keeps this test to seconds; window and
  // LongHeads run the whole 16K (32x the trained length).
  for (int64_t n : {2048, 8192, 16384}) {
    for (AttentionPolicy policy : {AttentionPolicy::kFull, AttentionPolicy::kWindow, AttentionPolicy::kLongHeads}) {
      if (n == 8192 && policy != AttentionPolicy::kFull) continue;
      if (n == 16384 && policy == AttentionPolicy::kFull) continue;
      BlockPool pool(Geometry(), KvDType::kF32, int64_t{1} << 30);
      LongContextParams params;
      params.policy = policy;
      params.chunk_size = 64;
      params.atten_length = 512;  // the trained context
      auto seq = PagedSequence::Create(model_->weights.config, params, &pool);
      ASSERT_TRUE(seq.ok());
      const std::vector<float> logits = Run(seq->get(), n, 512);
      ASSERT_EQ(static_cast<int64_t>(logits.size()), n * vocab);
      for (float x : logits) ASSERT_TRUE(std::isfinite(x));
      loss[std::string(PolicyName(policy)) + "@" + std::to_string(n)] = tail_loss(logits, n, vocab);
      EXPECT_EQ((*seq)->block_table().size(), static_cast<size_t>((n + 63) / 64));
      seq->reset();
      EXPECT_EQ(pool.blocks_in_use(), 0);
    }
  }
  for (const auto& [name, l] : loss) std::printf("[ loss ] %s: %.3f nats/token\n", name.c_str(), l);
  // Past the trained length, windowed and LongHeads attention keep the
  // model's loss near its in-window value; full attention degrades.
  EXPECT_GT(loss["full@8192"], 1.5 * loss["longheads@2048"]);
  EXPECT_LT(loss["longheads@16384"], loss["full@8192"]);
  EXPECT_LT(loss["longheads@16384"], 1.5 * loss["longheads@2048"]);
}

// Past ~500 candidate chunks, a decode step scores its summary heads one per
// thread (PagedSequence::ScoreCandidates): every chunk list of the decode
// steps equals that of a run on one thread, and the logits stay close.
TEST_F(PagedSequenceTest, DecodeStepsGiveTheSameResultsOnOneThreadAndOnSeveral) {
  struct Recorder : SelectionObserver {
    void OnSelection(int layer, int head, int64_t position, std::span<const int32_t> chunks) override {
      lists[{layer, head, position}].assign(chunks.begin(), chunks.end());
    }
    std::map<std::tuple<int, int, int64_t>, std::vector<int32_t>> lists;
  };
  const int64_t prompt = 2400, decode = 12;  // 600 chunks of 4: 597 candidates
  auto run = [&](int threads, Recorder* recorder) {
    cpu::SetNumThreads(threads);
    BlockPool pool(Geometry(), KvDType::kF32, int64_t{1} << 30);
    LongContextParams params;
    params.policy = AttentionPolicy::kLongHeads;
    params.summary = SummaryKind::kBound;
    params.chunk_size = 4;
    params.atten_length = 32;
    auto seq = PagedSequence::Create(model_->weights.config, params, &pool);
    EXPECT_TRUE(seq.ok()) << seq.status();
    LlamaModel llama(model_->weights);
    std::vector<float> all, logits;
    BatchEntry e{seq->get(), {tokens_.data(), static_cast<size_t>(prompt)}, false};
    EXPECT_TRUE(llama.Forward({&e, 1}, &logits).ok());
    (*seq)->set_observer(recorder);
    for (int64_t pos = prompt; pos < prompt + decode; ++pos) {
      BatchEntry step{seq->get(), {tokens_.data() + pos, 1}, false};
      EXPECT_TRUE(llama.Forward({&step, 1}, &logits).ok());
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  };
  const int before = cpu::NumThreads();
  Recorder one, several;
  const std::vector<float> want = run(1, &one);
  const std::vector<float> got = run(std::max(2, before), &several);
  cpu::SetNumThreads(before);
  ExpectClose(got, want, 1e-4, 1e-4);  // BLAS splits its sums by thread count
  const ModelConfig& c = model_->weights.config;
  EXPECT_EQ(one.lists.size(), static_cast<size_t>(decode * c.n_layers * c.n_heads));
  EXPECT_TRUE(one.lists == several.lists);
}

TEST_F(PagedSequenceTest, PoolExhaustionIsResourceExhaustedAndCommitsNothing) {
  LongContextParams params;
  params.chunk_size = 16;
  params.atten_length = 64;
  BlockPool small(Geometry(), KvDType::kF32, 3 * BlockPool(Geometry(), KvDType::kF32, 0).BlockBytes(16));
  auto seq = PagedSequence::Create(model_->weights.config, params, &small);
  ASSERT_TRUE(seq.ok());
  LlamaModel llama(model_->weights);
  std::vector<float> logits;
  BatchEntry e{seq->get(), {tokens_.data(), 40}, false};
  ASSERT_TRUE(llama.Forward({&e, 1}, &logits).ok());
  e.tokens = {tokens_.data() + 40, 20};
  EXPECT_EQ(llama.Forward({&e, 1}, &logits).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*seq)->length(), 40);
  seq->reset();
  EXPECT_EQ(small.blocks_in_use(), 0);
}

TEST_F(PagedSequenceTest, InvalidParamsNameTheParameter) {
  BlockPool pool(Geometry(), KvDType::kF32, 1 << 20);
  auto expect = [&](LongContextParams p, const char* name) {
    auto seq = PagedSequence::Create(model_->weights.config, p, &pool);
    ASSERT_FALSE(seq.ok());
    EXPECT_EQ(seq.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(seq.status().message().find(name), absl::string_view::npos) << seq.status();
  };
  LongContextParams p;
  p.chunk_size = 0;
  expect(p, "chunk_size");
  p = {};
  p.atten_length = 1000;
  expect(p, "atten_length");
  p = {};
  p.chunk_size = 64;
  p.atten_length = 128;
  expect(p, "3 slots");
}

}  // namespace
}  // namespace hr
