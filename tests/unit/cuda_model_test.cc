// The CUDA forward pass (server/backend_cuda) against the CPU backend
// (hr::LlamaModel + hr::PagedSequence) on the same models: stories260K (a
// real pretrained LLaMA, GQA 8/4, head_dim 8, GGUF adjacent-pair RoPE) and
// random tiny models (GQA and MHA, both RoPE layouts), for every long-context
// policy with small chunks and windows so that selection really happens.
//
// Each run prefills a prompt in pieces (ranges longer than 8 tokens take the
// prefill kernel, shorter ones the decode kernel, pieces cross chunk
// boundaries) with logits at every position, then decodes greedily; the GPU
// is fed the CPU's greedy tokens. FP32: the same greedy ids and every logit
// within |got − want| <= atol + rtol·|want|. BF16 weights (and KV): logits
// close (relative L2 error per position, greedy agreement). Every test skips
// with a message without a GPU (ctest label `gpu`).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/common.h"
#include "server/backend_cuda/cuda_kv_cache.h"
#include "server/backend_cuda/attention_step.h"
#include "server/backend_cuda/cuda_llama_model.h"
#include "server/backend_cuda/kv_budget.h"
#include "server/common/splitmix64.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_sequence.h"
#include "server/model/llama_model.h"
#include "server/model/loader.h"
#include "server/model/weights.h"
#include "tests/test_util.h"

namespace hr {
namespace {

#define SKIP_WITHOUT_GPU()                                                            \
  if (cuda::DeviceCount() == 0) {                                                     \
    GTEST_SKIP() << "no CUDA device visible: GPU test skipped (run on a GPU machine)"; \
  }

// ---------------------------------------------------------------- runs

struct Script {
  std::vector<int32_t> prompt;
  std::vector<int64_t> pieces;  // prefill calls, summing to prompt.size()
  int n_decode = 0;
};

struct Trace {
  std::vector<std::vector<float>> rows;  // logits of every prompt position, then of each decode step
  std::vector<int32_t> tokens;           // decoded (greedy) tokens
};

int32_t Argmax(const std::vector<float>& row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

void AppendRows(const std::vector<float>& logits, int64_t vocab, Trace* t) {
  for (size_t r = 0; r * vocab < logits.size(); ++r) {
    t->rows.emplace_back(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
  }
}

// The CPU backend, greedy.
Trace RunCpu(const LlamaWeights& w, const LongContextParams& params, const Script& s) {
  Trace t;
  const ModelConfig& c = w.config;
  LlamaModel model(w);
  BlockPool pool(KvGeometry{c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim}, KvDType::kF32, int64_t{1} << 30);
  auto seq = PagedSequence::Create(c, params, &pool);
  EXPECT_TRUE(seq.ok()) << seq.status();
  if (!seq.ok()) return t;
  std::vector<float> logits;
  size_t at = 0;
  for (int64_t piece : s.pieces) {
    BatchEntry e{seq->get(), std::span<const int32_t>(s.prompt.data() + at, piece), true};
    EXPECT_TRUE(model.Forward({&e, 1}, &logits).ok());
    AppendRows(logits, c.vocab_size, &t);
    at += piece;
  }
  for (int i = 0; i < s.n_decode; ++i) {
    const int32_t next = Argmax(t.rows.back());
    t.tokens.push_back(next);
    BatchEntry e{seq->get(), std::span<const int32_t>(&next, 1), false};
    EXPECT_TRUE(model.Forward({&e, 1}, &logits).ok());
    AppendRows(logits, c.vocab_size, &t);
  }
  return t;
}

// The CUDA backend, fed `forced` as the decoded tokens.
Trace RunCuda(CudaLlamaModel& model, const LongContextParams& params, const Script& s,
              const std::vector<int32_t>& forced) {
  Trace t;
  auto seq = model.NewSequence(params, static_cast<int64_t>(s.prompt.size()) + s.n_decode);
  EXPECT_TRUE(seq.ok()) << seq.status();
  if (!seq.ok()) return t;
  std::vector<float> logits;
  size_t at = 0;
  for (int64_t piece : s.pieces) {
    CudaBatchEntry e{seq->get(), std::span<const int32_t>(s.prompt.data() + at, piece), true};
    const absl::Status st = model.Forward({&e, 1}, &logits);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return t;
    AppendRows(logits, model.config().vocab_size, &t);
    at += piece;
  }
  for (int32_t next : forced) {
    t.tokens.push_back(Argmax(t.rows.back()));
    CudaBatchEntry e{seq->get(), std::span<const int32_t>(&next, 1), false};
    const absl::Status st = model.Forward({&e, 1}, &logits);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return t;
    AppendRows(logits, model.config().vocab_size, &t);
  }
  return t;
}

// FP32: same greedy ids, every logit within atol + rtol·|want|.
void ExpectSameFp32(const Trace& got, const Trace& want, double atol, double rtol) {
  ASSERT_EQ(got.rows.size(), want.rows.size());
  EXPECT_EQ(got.tokens, want.tokens) << "greedy ids differ";
  double max_err = 0.0;
  int64_t bad = 0, total = 0;
  for (size_t r = 0; r < want.rows.size(); ++r) {
    for (size_t i = 0; i < want.rows[r].size(); ++i) {
      const double err = std::fabs(static_cast<double>(got.rows[r][i]) - want.rows[r][i]);
      max_err = std::max(max_err, err);
      if (!(err <= atol + rtol * std::fabs(want.rows[r][i]))) {
        if (bad < 5) ADD_FAILURE() << "position " << r << " logit " << i << ": " << got.rows[r][i] << " vs " << want.rows[r][i];
        ++bad;
      }
      ++total;
    }
  }
  EXPECT_EQ(bad, 0) << bad << " of " << total << " logits off";
  std::printf("  fp32: %zu positions, max |logit diff| %.3g, greedy ids %s\n", want.rows.size(), max_err,
              got.tokens == want.tokens ? "identical" : "DIFFER");
}

// BF16: the relative L2 error of each position's logits, worst <= max_worst
// and median <= max_median, and the greedy ids agree on at least min_agree
// of the decode steps. (Under a data-dependent policy, BF16 rounding flips
// near-tie chunk selections at a few positions, so the worst position may
// differ by much more than the median.)
void ExpectCloseBf16(const Trace& got, const Trace& want, double max_worst, double max_median, double min_agree) {
  ASSERT_EQ(got.rows.size(), want.rows.size());
  std::vector<double> rel;
  for (size_t r = 0; r < want.rows.size(); ++r) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < want.rows[r].size(); ++i) {
      const double d = static_cast<double>(got.rows[r][i]) - want.rows[r][i];
      num += d * d;
      den += static_cast<double>(want.rows[r][i]) * want.rows[r][i];
    }
    rel.push_back(std::sqrt(num / std::max(den, 1e-30)));
  }
  std::sort(rel.begin(), rel.end());
  const double worst = rel.back(), median = rel[rel.size() / 2];
  int agree = 0;
  for (size_t i = 0; i < want.tokens.size(); ++i) agree += got.tokens[i] == want.tokens[i] ? 1 : 0;
  const double frac = want.tokens.empty() ? 1.0 : static_cast<double>(agree) / want.tokens.size();
  EXPECT_LE(worst, max_worst);
  EXPECT_LE(median, max_median);
  EXPECT_GE(frac, min_agree);
  std::printf("  bf16: %zu positions, relative L2 error median %.4f worst %.4f, greedy agreement %d/%zu\n",
              want.rows.size(), median, worst, agree, want.tokens.size());
}

// ---------------------------------------------------------------- configs

struct PolicyCase {
  std::string name;
  LongContextParams params;
};

LongContextParams Params(AttentionPolicy policy, int32_t chunk, int32_t atten, SummaryKind summary = SummaryKind::kBound,
                         GqaSelection gqa = GqaSelection::kPerQueryHead,
                         PrefillSelection prefill = PrefillSelection::kPerToken) {
  LongContextParams p;
  p.policy = policy;
  p.chunk_size = chunk;
  p.atten_length = atten;
  p.summary = summary;
  p.gqa = gqa;
  p.prefill = prefill;
  return p;
}

// Every policy, every summary kind, both GQA modes, both prefill modes.
std::vector<PolicyCase> AllPolicies(int32_t chunk, int32_t atten) {
  using A = AttentionPolicy;
  using S = SummaryKind;
  using G = GqaSelection;
  using P = PrefillSelection;
  return {
      {"full", Params(A::kFull, chunk, atten)},
      {"window", Params(A::kWindow, chunk, atten)},
      {"longheads/bound/query_head/token", Params(A::kLongHeads, chunk, atten, S::kBound)},
      {"longheads/longheads/query_head/token", Params(A::kLongHeads, chunk, atten, S::kLongHeads)},
      {"longheads/mean/kv_head/token", Params(A::kLongHeads, chunk, atten, S::kMean, G::kPerKvHead)},
      {"longheads/longheads/kv_head/chunk",
       Params(A::kLongHeads, chunk, atten, S::kLongHeads, G::kPerKvHead, P::kPerChunk)},
      {"longheads/bound/query_head/chunk",
       Params(A::kLongHeads, chunk, atten, S::kBound, G::kPerQueryHead, P::kPerChunk)},
  };
}

std::unique_ptr<CudaLlamaModel> MakeModel(const LlamaWeights& w, int32_t chunk, WeightDType wd = WeightDType::kF32,
                                          KvDType kv = KvDType::kF32) {
  CudaModelOptions o;
  o.weights = wd;
  o.kv_dtype = kv;
  o.chunk_size = chunk;
  o.kv_budget_bytes = int64_t{256} << 20;
  auto m = CudaLlamaModel::Create(w, o);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<int32_t> RandomTokens(uint64_t seed, int64_t n, int64_t vocab) {
  SplitMix64 rng{seed};
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng.Below(vocab));
  return t;
}

ModelConfig TinyConfig(int64_t dim, int64_t heads, int64_t kv_heads, RopeStyle style) {
  ModelConfig c;
  c.dim = dim;
  c.n_layers = 2;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.ffn_dim = 2 * dim;
  c.vocab_size = 300;
  c.trained_context = 256;
  c.rope_style = style;
  return c;
}

// ---------------------------------------------------------------- stories260K

class CudaStories260kTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (cuda::DeviceCount() == 0) return;
    auto loaded = LoadModel(testing::SharedDir() + "/models/stories260K.gguf");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = new LoadedModel(std::move(*loaded));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  // BOS and 199 ids of the reference story: 13 chunks of 16, 5 slots.
  static Script StoryScript(std::vector<int64_t> pieces, int n_decode) {
    std::istringstream in(testing::ReadFileOrDie(testing::SharedDir() + "/models/stories260K.greedy512.ids"));
    Script s;
    s.prompt.push_back(1);
    int32_t id;
    while (s.prompt.size() < 200 && in >> id) s.prompt.push_back(id);
    s.pieces = std::move(pieces);
    s.n_decode = n_decode;
    return s;
  }
  static LoadedModel* model_;
};
LoadedModel* CudaStories260kTest::model_ = nullptr;

constexpr int32_t kChunk = 16;
constexpr int32_t kAtten = 80;  // 5 slots: sink, 2 selected, previous, own

TEST_F(CudaStories260kTest, Fp32MatchesCpuForEveryPolicy) {
  SKIP_WITHOUT_GPU();
  const Script s = StoryScript({77, 5, 1, 117}, 24);
  ASSERT_EQ(s.prompt.size(), 200u);
  auto gpu = MakeModel(model_->weights, kChunk);
  ASSERT_NE(gpu, nullptr);
  for (const PolicyCase& pc : AllPolicies(kChunk, kAtten)) {
    SCOPED_TRACE(pc.name);
    std::printf("stories260K %s\n", pc.name.c_str());
    const Trace want = RunCpu(model_->weights, pc.params, s);
    ExpectSameFp32(RunCuda(*gpu, pc.params, s, want.tokens), want, 5e-4, 5e-4);
  }
}

TEST_F(CudaStories260kTest, Fp32OnePrefillCallAndOddChunkSize) {
  SKIP_WITHOUT_GPU();
  // The whole prompt in one call (13 ranges), and chunks of 7 tokens.
  for (int32_t chunk : {16, 7}) {
    const Script s = StoryScript({200}, 12);
    auto gpu = MakeModel(model_->weights, chunk);
    ASSERT_NE(gpu, nullptr);
    for (AttentionPolicy policy : {AttentionPolicy::kLongHeads, AttentionPolicy::kFull}) {
      const LongContextParams p = Params(policy, chunk, 5 * chunk);
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk << " " << PolicyName(policy));
      std::printf("stories260K chunk %d %s, one prefill call\n", chunk, std::string(PolicyName(policy)).c_str());
      const Trace want = RunCpu(model_->weights, p, s);
      ExpectSameFp32(RunCuda(*gpu, p, s, want.tokens), want, 5e-4, 5e-4);
    }
  }
}

TEST_F(CudaStories260kTest, BatchedSequencesMatchSingleCpuRuns) {
  SKIP_WITHOUT_GPU();
  // Three sequences prefill in one Forward call (different lengths), then
  // decode together; each matches its own CPU run.
  const LongContextParams p = Params(AttentionPolicy::kLongHeads, kChunk, kAtten);
  const Script full = StoryScript({200}, 0);
  const std::vector<int64_t> lengths = {41, 120, 86};
  const int n_decode = 16;
  std::vector<Script> scripts;
  std::vector<Trace> want;
  for (size_t i = 0; i < lengths.size(); ++i) {
    Script s;
    s.prompt.assign(full.prompt.begin() + 10 * i, full.prompt.begin() + 10 * i + lengths[i]);
    s.pieces = {lengths[i]};
    s.n_decode = n_decode;
    scripts.push_back(s);
    want.push_back(RunCpu(model_->weights, p, s));
  }
  auto gpu = MakeModel(model_->weights, kChunk);
  ASSERT_NE(gpu, nullptr);
  std::vector<std::unique_ptr<CudaSequence>> seqs;
  std::vector<Trace> got(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    auto seq = gpu->NewSequence(p, lengths[i] + n_decode);
    ASSERT_TRUE(seq.ok()) << seq.status();
    seqs.push_back(std::move(*seq));
  }
  std::vector<float> logits;
  std::vector<CudaBatchEntry> batch;
  for (size_t i = 0; i < lengths.size(); ++i) batch.push_back({seqs[i].get(), scripts[i].prompt, true});
  ASSERT_TRUE(gpu->Forward(batch, &logits).ok());
  const int64_t V = gpu->config().vocab_size;
  int64_t row = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    for (int64_t r = 0; r < lengths[i]; ++r, ++row) {
      got[i].rows.emplace_back(logits.begin() + row * V, logits.begin() + (row + 1) * V);
    }
  }
  for (int step = 0; step < n_decode; ++step) {
    std::vector<int32_t> next(lengths.size());
    batch.clear();
    for (size_t i = 0; i < lengths.size(); ++i) {
      got[i].tokens.push_back(Argmax(got[i].rows.back()));
      next[i] = want[i].tokens[step];
      batch.push_back({seqs[i].get(), std::span<const int32_t>(&next[i], 1), false});
    }
    ASSERT_TRUE(gpu->Forward(batch, &logits).ok());
    for (size_t i = 0; i < lengths.size(); ++i) {
      got[i].rows.emplace_back(logits.begin() + i * V, logits.begin() + (i + 1) * V);
    }
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "sequence " << i);
    ExpectSameFp32(got[i], want[i], 5e-4, 5e-4);
  }
}

TEST_F(CudaStories260kTest, MixedBatchesMatchSingleCpuRuns) {
  SKIP_WITHOUT_GPU();
  // Decode entries of different policies (lists of different lengths in one
  // decode launch), a prefill entry between two decode entries (two runs of
  // decode rows), then three decode entries in one run.
  const Script full = StoryScript({200}, 0);
  struct Entry {
    LongContextParams params;
    int64_t length;
    int first_step;  // decode step at which its prompt is prefilled (-1: before the first)
  };
  const std::vector<Entry> entries = {{Params(AttentionPolicy::kFull, kChunk, kAtten), 120, -1},
                                      {Params(AttentionPolicy::kWindow, kChunk, kAtten), 41, 5},
                                      {Params(AttentionPolicy::kLongHeads, kChunk, kAtten), 86, -1}};
  const int n_steps = 12;
  std::vector<Script> scripts;
  std::vector<Trace> want;
  for (size_t i = 0; i < entries.size(); ++i) {
    Script s;
    s.prompt.assign(full.prompt.begin() + 10 * i, full.prompt.begin() + 10 * i + entries[i].length);
    s.pieces = {entries[i].length};
    s.n_decode = entries[i].first_step < 0 ? n_steps : n_steps - 1 - entries[i].first_step;
    scripts.push_back(s);
    want.push_back(RunCpu(model_->weights, entries[i].params, s));
  }
  auto gpu = MakeModel(model_->weights, kChunk);
  ASSERT_NE(gpu, nullptr);
  const int64_t V = gpu->config().vocab_size;
  std::vector<std::unique_ptr<CudaSequence>> seqs;
  for (size_t i = 0; i < entries.size(); ++i) {
    auto seq = gpu->NewSequence(entries[i].params, entries[i].length + n_steps);
    ASSERT_TRUE(seq.ok()) << seq.status();
    seqs.push_back(std::move(*seq));
  }
  std::vector<Trace> got(entries.size());
  std::vector<int> decoded(entries.size(), 0);
  std::vector<float> logits;
  for (int step = -1; step < n_steps; ++step) {
    std::vector<CudaBatchEntry> batch;
    std::vector<size_t> who;
    std::vector<int32_t> next(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].first_step == step) {
        batch.push_back({seqs[i].get(), scripts[i].prompt, true});
      } else if (entries[i].first_step < step) {
        got[i].tokens.push_back(Argmax(got[i].rows.back()));
        next[i] = want[i].tokens[decoded[i]++];
        batch.push_back({seqs[i].get(), std::span<const int32_t>(&next[i], 1), false});
      } else {
        continue;
      }
      who.push_back(i);
    }
    ASSERT_TRUE(gpu->Forward(batch, &logits).ok()) << "step " << step;
    int64_t row = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      const int64_t rows = batch[b].all_logits ? static_cast<int64_t>(batch[b].tokens.size()) : 1;
      for (int64_t r = 0; r < rows; ++r, ++row) {
        got[who[b]].rows.emplace_back(logits.begin() + row * V, logits.begin() + (row + 1) * V);
      }
    }
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "sequence " << i << " " << PolicyName(entries[i].params.policy));
    ExpectSameFp32(got[i], want[i], 5e-4, 5e-4);
  }
}

TEST_F(CudaStories260kTest, Bf16LogitsClose) {
  SKIP_WITHOUT_GPU();
  const Script s = StoryScript({77, 5, 1, 117}, 24);
  for (KvDType kv : {KvDType::kF32, KvDType::kBF16}) {
    auto gpu = MakeModel(model_->weights, kChunk, WeightDType::kBF16, kv);
    ASSERT_NE(gpu, nullptr);
    for (AttentionPolicy policy : {AttentionPolicy::kFull, AttentionPolicy::kLongHeads}) {
      const LongContextParams p = Params(policy, kChunk, kAtten);
      SCOPED_TRACE(::testing::Message() << PolicyName(policy) << (kv == KvDType::kBF16 ? " kv bf16" : " kv f32"));
      std::printf("stories260K bf16 weights, kv %s, %s\n", kv == KvDType::kBF16 ? "bf16" : "f32",
                  std::string(PolicyName(policy)).c_str());
      const Trace want = RunCpu(model_->weights, p, s);
      ExpectCloseBf16(RunCuda(*gpu, p, s, want.tokens), want, 0.10, 0.03, 0.75);
    }
  }
}

TEST_F(CudaStories260kTest, ErrorsAreStatusCodes) {
  SKIP_WITHOUT_GPU();
  auto gpu = MakeModel(model_->weights, kChunk);
  ASSERT_NE(gpu, nullptr);
  const LongContextParams p = Params(AttentionPolicy::kLongHeads, kChunk, kAtten);
  EXPECT_EQ(gpu->NewSequence(Params(AttentionPolicy::kLongHeads, 32, 160), 100).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto seq = gpu->NewSequence(p, 20);
  ASSERT_TRUE(seq.ok());
  std::vector<float> logits;
  const std::vector<int32_t> bad = {1, 512};
  CudaBatchEntry e{seq->get(), bad, false};
  EXPECT_EQ(gpu->Forward({&e, 1}, &logits).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> many(21, 5);
  e.tokens = many;
  EXPECT_EQ(gpu->Forward({&e, 1}, &logits).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*seq)->length(), 0);
  const std::vector<int32_t> ok(20, 5);
  e.tokens = ok;
  EXPECT_TRUE(gpu->Forward({&e, 1}, &logits).ok());
  EXPECT_EQ((*seq)->length(), 20);
  // Blocks go back to the cache with the sequence.
  const int32_t free_before = gpu->kv_cache().free_blocks();
  seq->reset();
  EXPECT_EQ(gpu->kv_cache().free_blocks(), free_before + 2);
}

// ---------------------------------------------------------------- random tiny models

struct TinyCase {
  std::string name;
  ModelConfig config;
};

std::vector<TinyCase> TinyCases() {
  return {
      {"gqa 4/2, head_dim 64, neox", TinyConfig(256, 4, 2, RopeStyle::kNeoX)},
      {"mha 4/4, head_dim 32, adjacent", TinyConfig(128, 4, 4, RopeStyle::kAdjacent)},
      {"gqa 8/2, head_dim 16, adjacent", TinyConfig(128, 8, 2, RopeStyle::kAdjacent)},
  };
}

TEST(CudaTinyModelTest, Fp32MatchesCpuForEveryPolicy) {
  SKIP_WITHOUT_GPU();
  for (const TinyCase& tc : TinyCases()) {
    const LlamaWeights w = RandomLlamaWeights(tc.config, 7);
    Script s;
    s.prompt = RandomTokens(11, 150, tc.config.vocab_size);
    s.pieces = {70, 7, 73};
    s.n_decode = 20;
    auto gpu = MakeModel(w, kChunk);
    ASSERT_NE(gpu, nullptr);
    for (const PolicyCase& pc : AllPolicies(kChunk, 64)) {
      SCOPED_TRACE(tc.name + " " + pc.name);
      std::printf("%s %s\n", tc.name.c_str(), pc.name.c_str());
      const Trace want = RunCpu(w, pc.params, s);
      ExpectSameFp32(RunCuda(*gpu, pc.params, s, want.tokens), want, 1e-4, 1e-4);
    }
  }
}

TEST(CudaTinyModelTest, Bf16LogitsClose) {
  SKIP_WITHOUT_GPU();
  for (const TinyCase& tc : TinyCases()) {
    const LlamaWeights w = RandomLlamaWeights(tc.config, 7);
    Script s;
    s.prompt = RandomTokens(11, 150, tc.config.vocab_size);
    s.pieces = {70, 7, 73};
    s.n_decode = 20;
    auto gpu = MakeModel(w, kChunk, WeightDType::kBF16, KvDType::kBF16);
    ASSERT_NE(gpu, nullptr);
    for (AttentionPolicy policy : {AttentionPolicy::kFull, AttentionPolicy::kWindow, AttentionPolicy::kLongHeads}) {
      const LongContextParams p = Params(policy, kChunk, 64);
      SCOPED_TRACE(tc.name + " " + std::string(PolicyName(policy)));
      std::printf("%s bf16 weights and kv, %s\n", tc.name.c_str(), std::string(PolicyName(policy)).c_str());
      const Trace want = RunCpu(w, p, s);
      // Random models attend almost uniformly, so their chunk scores have
      // near ties: a flipped selection moves a position's logits by ~10-20%.
      const double worst = policy == AttentionPolicy::kLongHeads ? 0.5 : 0.05;
      ExpectCloseBf16(RunCuda(*gpu, p, s, want.tokens), want, worst, 0.03, 0.75);
    }
  }
}

TEST(CudaTinyModelTest, UnsupportedHeadDimIsUnimplemented) {
  SKIP_WITHOUT_GPU();
  const LlamaWeights w = RandomLlamaWeights(TinyConfig(96 * 2, 2, 2, RopeStyle::kNeoX), 1);
  CudaModelOptions o;
  o.chunk_size = 16;
  EXPECT_EQ(CudaLlamaModel::Create(w, o).status().code(), absl::StatusCode::kUnimplemented);
}

// --kv_cache_mb 0: Create holds the working scratch at its bound, then the
// cache fills the asked share of the device less what is in use, in whole
// blocks. Forward calls within the options (the largest step, every row with
// logits, per-token and per-chunk LongHeads prefill and `full` up to the
// longest context, then a batch decoding max_sequences sequences) never
// grow the scratch: the bound covers every reservation they make.
TEST(CudaTinyModelTest, AutoKvBudgetHoldsAWorkingScratchForwardNeverGrows) {
  SKIP_WITHOUT_GPU();
  const LlamaWeights w = RandomLlamaWeights(TinyConfig(256, 4, 2, RopeStyle::kNeoX), 3);
  CudaModelOptions o;
  o.weights = WeightDType::kBF16;  // BF16 KV: the tensor-core prefill and its split workspace
  o.kv_dtype = KvDType::kBF16;
  o.chunk_size = kChunk;
  o.kv_budget_bytes = 0;
  o.memory_fraction = 0.1;
  o.max_step_tokens = 300;
  o.max_context_tokens = 1500;
  o.max_sequences = 4;
  cuda::DeviceMemory before;
  ASSERT_EQ(cuda::CurrentDeviceMemory(&before), cuda::CudaStatus::kOk);
  auto created = CudaLlamaModel::Create(w, o);
  ASSERT_TRUE(created.ok()) << created.status();
  CudaLlamaModel& model = **created;
  const ModelConfig& c = w.config;
  const int64_t block = CudaKvCache::BlockBytes(KvGeometry{c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim},
                                                o.kv_dtype, kChunk);
  const int64_t budget = model.kv_cache().budget_bytes();
  const int64_t held = model.scratch_bytes();
  std::printf("  device %lld MiB (%lld MiB free before), KV budget %lld MiB, scratch held %lld MiB\n",
              static_cast<long long>(before.total_bytes >> 20), static_cast<long long>(before.free_bytes >> 20),
              static_cast<long long>(budget >> 20), static_cast<long long>(held >> 20));
  EXPECT_EQ(budget % block, 0);
  EXPECT_GT(budget, 0);
  EXPECT_LE(budget / block, kAutoKvMaxBlocks);
  EXPECT_GE(held, CudaLlamaModel::WorkingBytesBound(c, o) - CudaLlamaModel::kWorkingMarginBytes);
  // The weights and the scratch were in use too when the budget was set.
  EXPECT_LE(budget, static_cast<int64_t>(0.1 * static_cast<double>(before.total_bytes)) -
                        (before.total_bytes - before.free_bytes) - held - CudaLlamaModel::kWorkingMarginBytes);

  LongContextParams per_chunk = Params(AttentionPolicy::kLongHeads, kChunk, 64);
  per_chunk.prefill = PrefillSelection::kPerChunk;
  const std::vector<int32_t> tokens = RandomTokens(5, o.max_step_tokens, c.vocab_size);
  std::vector<float> logits;
  for (const LongContextParams& p :
       {Params(AttentionPolicy::kLongHeads, kChunk, 64), per_chunk, Params(AttentionPolicy::kFull, kChunk, 64)}) {
    SCOPED_TRACE(std::string(PolicyName(p.policy)));
    std::vector<std::unique_ptr<CudaSequence>> seqs;
    for (int64_t i = 0; i < o.max_sequences; ++i) {
      auto seq = model.NewSequence(p, o.max_context_tokens);
      ASSERT_TRUE(seq.ok()) << seq.status();
      seqs.push_back(std::move(*seq));
    }
    // The first sequence to the longest context in the largest steps; the
    // others to one step short of it.
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int64_t end = o.max_context_tokens - (i == 0 ? 0 : o.max_step_tokens);
      for (int64_t at = 0; at + o.max_step_tokens <= end; at += o.max_step_tokens) {
        CudaBatchEntry e{seqs[i].get(), tokens, /*all_logits=*/true};
        ASSERT_TRUE(model.Forward({&e, 1}, &logits).ok());
      }
    }
    // Every other sequence decodes together, a token each, then 8 each.
    for (size_t step : {size_t{1}, size_t{CudaLlamaModel::kDecodeMaxQueries}}) {
      std::vector<CudaBatchEntry> batch;
      for (size_t i = 1; i < seqs.size(); ++i) {
        batch.push_back({seqs[i].get(), std::span<const int32_t>(tokens.data(), step), /*all_logits=*/true});
      }
      ASSERT_TRUE(model.Forward(batch, &logits).ok());
    }
  }
  EXPECT_EQ(model.scratch_bytes(), held) << "a Forward call within the options grew the scratch";
}

}  // namespace
// Which decode rows share a selection launch, and which steps select their
// own rows: no GPU needed.
TEST(CudaDecodeSelectionTest, RowsShareALaunchOnlyUnderTheSameRules) {
  using P = AttentionPolicy;
  const LongContextParams lh = Params(P::kLongHeads, 16, 80);
  EXPECT_TRUE(SameDecodeSelection(lh, lh));
  EXPECT_FALSE(SameDecodeSelection(lh, Params(P::kLongHeads, 16, 96)));  // slots
  EXPECT_FALSE(SameDecodeSelection(lh, Params(P::kLongHeads, 32, 160)));  // chunk size
  EXPECT_FALSE(SameDecodeSelection(lh, Params(P::kLongHeads, 16, 80, SummaryKind::kMean)));
  EXPECT_FALSE(SameDecodeSelection(lh, Params(P::kLongHeads, 16, 80, SummaryKind::kBound, GqaSelection::kPerKvHead)));
  EXPECT_FALSE(SameDecodeSelection(lh, Params(P::kWindow, 16, 80)));
  // Prefill selection does not change a decode row's list.
  EXPECT_TRUE(SameDecodeSelection(
      lh, Params(P::kLongHeads, 16, 80, SummaryKind::kBound, GqaSelection::kPerQueryHead, PrefillSelection::kPerChunk)));
  // `full` reads chunks 0 .. c whatever its window; `window` ignores the summary.
  EXPECT_TRUE(SameDecodeSelection(Params(P::kFull, 16, 80), Params(P::kFull, 16, 160, SummaryKind::kMean)));
  EXPECT_TRUE(SameDecodeSelection(Params(P::kWindow, 16, 80), Params(P::kWindow, 16, 80, SummaryKind::kMean)));
  EXPECT_FALSE(SameDecodeSelection(Params(P::kWindow, 16, 80), Params(P::kWindow, 16, 96)));

  // Per-chunk selection sums a step's scores per chunk: steps of several
  // tokens select their own rows.
  const LongContextParams per_chunk =
      Params(P::kLongHeads, 16, 80, SummaryKind::kBound, GqaSelection::kPerQueryHead, PrefillSelection::kPerChunk);
  EXPECT_TRUE(SelectsOwnDecodeRows(per_chunk, 2));
  EXPECT_FALSE(SelectsOwnDecodeRows(per_chunk, 1));
  EXPECT_FALSE(SelectsOwnDecodeRows(lh, 5));
}

// The prefill sub-spans of one step: no GPU needed.
TEST(CudaPrefillSubSpanTest, SubSpansCoverTheStepAndEndOnChunkBoundaries) {
  for (int64_t w : {1, 7, 64, 256}) {
    for (int64_t p0 : {int64_t{0}, int64_t{3}, 5 * w, 5 * w + 1}) {
      for (int64_t n : {int64_t{1}, w - 1, w, 3 * w + 2, int64_t{2000}}) {
        for (int64_t max_queries : {int64_t{1}, int64_t{5}, w, 2 * w + 3, int64_t{1} << 20}) {
          if (n <= 0) continue;
          SCOPED_TRACE("w=" + std::to_string(w) + " p0=" + std::to_string(p0) + " n=" + std::to_string(n) +
                       " max=" + std::to_string(max_queries));
          int64_t spans = 0;
          for (int64_t i0 = 0; i0 < n; ++spans) {
            const int64_t i1 = PrefillSubSpanEnd(p0, i0, n, w, max_queries);
            ASSERT_GT(i1, i0);
            ASSERT_LE(i1, n);
            if (i1 < n) {
              EXPECT_EQ((p0 + i1) % w, 0) << "span [" << i0 << ", " << i1 << ") ends inside a chunk";
            }
            // No longer than asked, unless one chunk's queries need more.
            EXPECT_LE(i1 - i0, std::max(max_queries, w));
            i0 = i1;
          }
          if (max_queries >= n) {
            EXPECT_EQ(spans, 1);
          }
        }
      }
    }
  }
}

// The automatic KV budget's arithmetic (kv_budget.h): no GPU needed.
TEST(AutoKvBudgetTest, TheShareLessWhatIsInUseAndTheWorkingMemoryInWholeBlocks) {
  constexpr int64_t kGiB = int64_t{1} << 30, kMiB = int64_t{1} << 20;
  const cuda::DeviceMemory h100{80 * kGiB, 79 * kGiB};  // 1 GiB in use (weights, context)
  const int64_t block = 19 * kMiB;
  auto budget = AutoKvBudget(h100, 0.9, 2 * kGiB, block);
  ASSERT_TRUE(budget.ok()) << budget.status();
  const int64_t left = static_cast<int64_t>(0.9 * 80.0 * static_cast<double>(kGiB)) - kGiB - 2 * kGiB;
  EXPECT_EQ(*budget, left / block * block);
  EXPECT_GT(*budget, left - block);
  // The whole card, nothing in use: all of it, in whole blocks.
  EXPECT_EQ(*AutoKvBudget({10 * kGiB + 5, 10 * kGiB + 5}, 1.0, 0, kMiB), 10 * kGiB);
  // A tiny block on a large card: kAutoKvMaxBlocks of them.
  EXPECT_EQ(*AutoKvBudget(h100, 0.9, 0, 4096), kAutoKvMaxBlocks * 4096);
}

TEST(AutoKvBudgetTest, NoRoomOrABadFractionIsAClearError) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  // 0.5 of 16 GiB with 7.5 GiB in use and 1 GiB of working memory: nothing left.
  const absl::StatusOr<int64_t> none = AutoKvBudget({16 * kGiB, 8 * kGiB + kGiB / 2}, 0.5, kGiB, 1 << 20);
  ASSERT_EQ(none.status().code(), absl::StatusCode::kResourceExhausted) << none.status();
  for (const char* part : {"16384 MiB", "8192 MiB", "7680 MiB", "1024 MiB", "--gpu_memory_fraction", "--kv_cache_mb"}) {
    EXPECT_NE(none.status().message().find(part), std::string::npos) << part << " in " << none.status();
  }
  // Less than one block left.
  EXPECT_EQ(AutoKvBudget({kGiB, kGiB}, 1.0, kGiB - 100, 101).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(*AutoKvBudget({kGiB, kGiB}, 1.0, kGiB - 101, 101), 101);
  for (double f : {0.0, -0.5, 1.01, std::nan("")}) {
    EXPECT_EQ(AutoKvBudget({kGiB, kGiB}, f, 0, 1024).status().code(), absl::StatusCode::kInvalidArgument) << f;
  }
  EXPECT_EQ(AutoKvBudget({kGiB, kGiB}, 0.5, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace hr
