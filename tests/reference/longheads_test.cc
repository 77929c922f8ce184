// Long-context attention (full / window / LongHeads over the paged KV cache,
// design.md §3) against longheads_ref.py, an independent float64 numpy
// forward pass that gathers raw keys and rotates them at their slot
// positions (no local-RoPE identity), on the tiny random LLaMA models of
// tiny_llama.py (GQA 6:2), loaded from the Hugging Face directory (NeoX RoPE)
// and from GGUF (adjacent RoPE, permuted Q/K).
//
// For every configuration of the script's grid (policies × summary kinds ×
// GQA modes × prefill modes, chunk sizes 4 and 8, 3 to 6 slots, a partial
// last chunk, linear RoPE scaling, a context shorter than the window):
//   * prompt mode: the tokens in one Forward call, logits at every position;
//   * decode mode: the first `decode_prefix` tokens in one call, then one
//     token per call (differs from prompt mode for prefill = chunk);
//   * the chunk lists a SelectionObserver records, for every (layer, query
//     head, position), equal the script's.
// Tolerance, element-wise: |got - ref| <= 1e-5 + 1e-4 * |ref|.
//
// Also: the full policy equals the contiguous path; F16 / BF16 KV pools stay
// close to F32; blocks return to the pool; invalid parameters and a full
// pool are rejected without committing anything.
//
// The script's output is cached under
// $HEADROOM_BUILD_DIR/test-tmp/longheads-ref-<hash of both scripts>.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_sequence.h"
#include "server/model/llama_model.h"
#include "server/model/loader.h"
#include "tests/reference/reference_util.h"

namespace hr {
namespace {

using reftest::LogitsMatch;
using reftest::ReadLogits;
using reftest::ReadText;

constexpr int64_t kBigBudget = int64_t{1} << 30;

// ---------------------------------------------------------------------------
// Reference data
// ---------------------------------------------------------------------------

struct LhConfig {
  std::string name, model;
  LongContextParams params;
  int64_t n_tokens = 0, decode_prefix = 0;
  double min_selection_gap = 0;
  // Absolute paths. gguf_literal_* only for the `longheads` summary.
  std::string prompt_logits, decode_logits, prompt_selections, decode_selections;
  std::string gguf_literal_prompt, gguf_literal_decode;

  // Whether some query ranks chunks by score.
  bool Ranks() const {
    return params.policy == AttentionPolicy::kLongHeads && params.slots() > 3 &&
           n_tokens > params.atten_length;
  }
  // Ranked with the summary whose scores depend on the file layout (see
  // longheads_ref.py).
  bool LayoutDependent() const { return Ranks() && params.summary == SummaryKind::kLongHeads; }
};

struct LhModel {
  nlohmann::json config;
  std::string hf, gguf;  // absolute paths
};

struct LhData {
  std::string error, dir;
  std::vector<int32_t> tokens;
  std::map<std::string, LhModel> models;
  std::vector<LhConfig> configs;
  double min_selection_gap = 0;
};

template <typename T>
T ParseOrThrow(absl::StatusOr<T> v) {
  if (!v.ok()) throw std::runtime_error(v.status().ToString());
  return *v;
}

// The smallest relative score gap that decided a ranking (null: none did).
double GapOf(const nlohmann::json& j) { return j.is_null() ? INFINITY : j.get<double>(); }

LhData LoadData() {
  LhData data;
  data.dir = reftest::CachedScriptOutput(HR_LONGHEADS_REF_SCRIPT,
                                         {HR_LONGHEADS_REF_SCRIPT, HR_TINY_LLAMA_SCRIPT},
                                         "longheads-ref", &data.error);
  if (!data.error.empty()) return data;
  bool ok = false;
  const std::string text = ReadText(data.dir + "/manifest.json", &ok);
  if (!ok) {
    data.error = "cannot read " + data.dir + "/manifest.json";
    return data;
  }
  const std::string d = data.dir + "/";
  try {
    const nlohmann::json m = nlohmann::json::parse(text);
    data.tokens = m.at("tokens").get<std::vector<int32_t>>();
    data.min_selection_gap = GapOf(m.at("min_selection_gap"));
    for (const auto& [name, info] : m.at("models").items()) {
      data.models[name] = LhModel{info.at("config"), d + info.at("hf").get<std::string>(),
                                  d + info.at("gguf").get<std::string>()};
    }
    for (const auto& c : m.at("configs")) {
      LhConfig cfg;
      cfg.name = c.at("name").get<std::string>();
      cfg.model = c.at("model").get<std::string>();
      cfg.params.policy = ParseOrThrow(ParsePolicy(c.at("policy").get<std::string>()));
      cfg.params.chunk_size = c.at("chunk_size").get<int32_t>();
      cfg.params.atten_length = c.at("atten_length").get<int32_t>();
      cfg.params.summary = ParseOrThrow(ParseSummaryKind(c.at("summary").get<std::string>()));
      cfg.params.gqa = ParseOrThrow(ParseGqaSelection(c.at("gqa").get<std::string>()));
      cfg.params.prefill =
          ParseOrThrow(ParsePrefillSelection(c.at("prefill").get<std::string>()));
      cfg.n_tokens = c.at("n_tokens").get<int64_t>();
      cfg.decode_prefix = c.at("decode_prefix").get<int64_t>();
      cfg.min_selection_gap = GapOf(c.at("min_selection_gap"));
      cfg.prompt_logits = d + c.at("prompt_logits").get<std::string>();
      cfg.decode_logits = d + c.at("decode_logits").get<std::string>();
      cfg.prompt_selections = d + c.at("prompt_selections").get<std::string>();
      cfg.decode_selections = d + c.at("decode_selections").get<std::string>();
      if (c.contains("gguf_literal_prompt_logits")) {
        cfg.gguf_literal_prompt = d + c.at("gguf_literal_prompt_logits").get<std::string>();
        cfg.gguf_literal_decode = d + c.at("gguf_literal_decode_logits").get<std::string>();
      }
      data.configs.push_back(cfg);
    }
  } catch (const std::exception& e) {
    data.error = "bad manifest " + data.dir + "/manifest.json: " + e.what();
  }
  return data;
}

const LhData& Data() {
  static const LhData* data = new LhData(LoadData());
  return *data;
}

const LhConfig& ConfigNamed(const std::string& name) {
  for (const LhConfig& c : Data().configs) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "configuration " << name << " not in the manifest";
  static const LhConfig none;
  return none;
}

// Loaded models by path, kept for the whole run.
const LoadedModel* Model(const std::string& path) {
  static std::map<std::string, std::unique_ptr<LoadedModel>>* cache =
      new std::map<std::string, std::unique_ptr<LoadedModel>>;
  auto it = cache->find(path);
  if (it != cache->end()) return it->second.get();
  absl::StatusOr<LoadedModel> loaded = LoadModel(path);
  EXPECT_TRUE(loaded.ok()) << "loading " << path << ": " << loaded.status();
  if (!loaded.ok()) return nullptr;
  auto owned = std::make_unique<LoadedModel>(*std::move(loaded));
  const LoadedModel* raw = owned.get();
  (*cache)[path] = std::move(owned);
  return raw;
}

const std::string& ModelPath(const std::string& model, const std::string& format) {
  const LhModel& m = Data().models.at(model);
  return format == "hf" ? m.hf : m.gguf;
}

KvGeometry Geometry(const ModelConfig& c) {
  return {c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim};
}

// sel[layer][head][position] = chunk list.
using Selections = std::vector<std::vector<std::vector<std::vector<int32_t>>>>;

Selections ReadSelections(const std::string& path) {
  bool ok = false;
  const std::string text = ReadText(path, &ok);
  EXPECT_TRUE(ok) << "cannot read " << path;
  if (!ok) return {};
  return nlohmann::json::parse(text).get<Selections>();
}

// ---------------------------------------------------------------------------
// Running the C++ side
// ---------------------------------------------------------------------------

class Recorder : public SelectionObserver {
 public:
  void OnSelection(int layer, int head, int64_t position,
                   std::span<const int32_t> chunks) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = std::make_tuple(layer, head, position);
    auto [it, inserted] = seen.emplace(key, std::vector<int32_t>(chunks.begin(), chunks.end()));
    if (!inserted) ++repeats;
  }
  std::map<std::tuple<int, int, int64_t>, std::vector<int32_t>> seen;
  int64_t repeats = 0;

 private:
  std::mutex mu_;
};

std::string ListString(const std::vector<int32_t>& v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? "," : "") << v[i];
  s << "]";
  return s.str();
}

// Differences between recorded and expected selections over every (layer,
// head, position < n): empty when they agree.
std::string CompareSelections(const Recorder& rec, const Selections& want, int64_t n) {
  int64_t diffs = 0, missing = 0;
  std::ostringstream first;
  for (size_t l = 0; l < want.size(); ++l) {
    for (size_t h = 0; h < want[l].size(); ++h) {
      for (int64_t p = 0; p < n; ++p) {
        auto it = rec.seen.find(std::make_tuple(static_cast<int>(l), static_cast<int>(h), p));
        if (it == rec.seen.end()) {
          ++missing;
          continue;
        }
        if (it->second != want[l][h][p]) {
          if (diffs < 4) {
            first << "\n    layer " << l << " head " << h << " position " << p << ": got "
                  << ListString(it->second) << ", want " << ListString(want[l][h][p]);
          }
          ++diffs;
        }
      }
    }
  }
  std::ostringstream out;
  if (missing > 0) out << missing << " (layer, head, position) never observed; ";
  if (rec.repeats > 0) out << rec.repeats << " observed more than once; ";
  if (diffs > 0) out << diffs << " chunk lists differ; first:" << first.str();
  return out.str();
}

struct RunResult {
  absl::Status status;
  std::vector<float> logits;  // [n_tokens, vocab]
};

// tokens[0, n) through `seq`: one call of `prefix` tokens (all logits), then
// one token per call.
RunResult RunCalls(LlamaModel& model, SequenceAttention* seq, std::span<const int32_t> tokens,
                   int64_t prefix) {
  RunResult r;
  std::vector<float> logits;
  const int64_t n = tokens.size();
  for (int64_t pos = 0; pos < n;) {
    const int64_t len = pos == 0 ? prefix : 1;
    BatchEntry e{seq, tokens.subspan(pos, len), true};
    r.status = model.Forward(std::span<const BatchEntry>(&e, 1), &logits);
    if (!r.status.ok()) return r;
    r.logits.insert(r.logits.end(), logits.begin(), logits.end());
    pos += len;
  }
  return r;
}

struct PagedRun {
  RunResult result;
  Recorder recorder;
};

// One configuration, prompt mode (prefix = n) or decode mode, on a fresh
// sequence in a fresh pool of `dtype`.
std::unique_ptr<PagedRun> RunPaged(const LoadedModel& loaded, const LongContextParams& params,
                                   std::span<const int32_t> tokens, int64_t prefix,
                                   KvDType dtype = KvDType::kF32) {
  auto run = std::make_unique<PagedRun>();
  BlockPool pool(Geometry(loaded.weights.config), dtype, kBigBudget);
  absl::StatusOr<std::unique_ptr<PagedSequence>> seq =
      PagedSequence::Create(loaded.weights.config, params, &pool);
  if (!seq.ok()) {
    run->result.status = seq.status();
    return run;
  }
  (*seq)->set_observer(&run->recorder);
  LlamaModel model(loaded.weights);
  run->result = RunCalls(model, seq->get(), tokens, prefix);
  seq->reset();
  EXPECT_EQ(pool.blocks_in_use(), 0) << "blocks not returned to the pool";
  return run;
}

// ---------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------

TEST(LongHeadsReference, ManifestCoversTheGrid) {
  const LhData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  EXPECT_EQ(data.tokens.size(), 64u);
  std::set<std::string> names;
  for (const LhConfig& c : data.configs) {
    names.insert(c.name);
    EXPECT_TRUE(c.params.Validate().ok()) << c.name << ": " << c.params.Validate();
    EXPECT_LE(c.decode_prefix, c.n_tokens) << c.name;
    EXPECT_GT(c.min_selection_gap, 1e-5) << c.name;
  }
  EXPECT_EQ(names.size(), data.configs.size()) << "duplicate names";
  for (const char* s : {"longheads", "bound", "mean"}) {
    for (const char* g : {"query_head", "kv_head"}) {
      for (const char* p : {"token", "chunk"}) {
        const std::string name = std::string("base_w4_a16_longheads_") + s + "_" + g + "_" + p;
        EXPECT_TRUE(names.count(name)) << name;
      }
    }
  }
  for (const char* name : {"base_w4_a16_full", "base_w4_a16_window", "base_w4_a12_window",
                           "base_w8_a32_full", "linear_rope_w4_a16_full",
                           "base_w4_a16_longheads_bound_kv_head_chunk_short"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
  EXPECT_GT(data.min_selection_gap, 1e-5);
}

// ---------------------------------------------------------------------------
// Every configuration against the reference, HF and GGUF
// ---------------------------------------------------------------------------

class LongHeadsFormatTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(Data().error.empty()) << Data().error; }

  // Compares both modes of one configuration with the given expected files;
  // checks the observed selections when `selections` is set.
  void Check(const LhConfig& c, const std::string& prompt_file, const std::string& decode_file,
             bool selections) {
    const LoadedModel* loaded = Model(ModelPath(c.model, GetParam()));
    ASSERT_NE(loaded, nullptr);
    const int64_t vocab = loaded->weights.config.vocab_size;
    const std::span<const int32_t> toks =
        std::span<const int32_t>(Data().tokens).subspan(0, c.n_tokens);
    for (const bool decode : {false, true}) {
      SCOPED_TRACE(c.name + (decode ? " decode" : " prompt"));
      const std::vector<float> want =
          ReadLogits(decode ? decode_file : prompt_file, c.n_tokens * vocab);
      auto run = RunPaged(*loaded, c.params, toks, decode ? c.decode_prefix : c.n_tokens);
      ASSERT_TRUE(run->result.status.ok()) << run->result.status;
      ASSERT_EQ(run->result.logits.size(), want.size());
      std::string sel_diff;
      if (selections) {
        sel_diff = CompareSelections(
            run->recorder, ReadSelections(decode ? c.decode_selections : c.prompt_selections),
            c.n_tokens);
        EXPECT_EQ(sel_diff, "") << "selections differ from the reference";
      }
      EXPECT_TRUE(LogitsMatch(run->result.logits.data(), want.data(), c.n_tokens, vocab, 0))
          << (sel_diff.empty() ? "" : "\n  (the selections differ too: " + sel_diff + ")");
    }
  }
};

// Every configuration except those scored with the `longheads` summary on
// GGUF (layout-dependent: see GgufLongHeadsSummaryFollowsHfLayout).
TEST_P(LongHeadsFormatTest, MatchesReference) {
  int checked = 0;
  for (const LhConfig& c : Data().configs) {
    if (GetParam() == "gguf" && c.LayoutDependent()) continue;
    Check(c, c.prompt_logits, c.decode_logits, /*selections=*/true);
    ++checked;
  }
  EXPECT_EQ(checked, GetParam() == "hf" ? 38 : 29);
}

INSTANTIATE_TEST_SUITE_P(Formats, LongHeadsFormatTest, ::testing::Values("hf", "gguf"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// The paper's summary dots qbar (value space) with the keys (key space); the
// GGUF conversion permutes the key channels but not the value channels, so
// unless the server maps the channels back, a GGUF file selects differently
// from the HF directory of the same weights. The reference defines the HF
// layout's result as the expected one for both.
TEST(LongHeadsReference, GgufLongHeadsSummaryFollowsHfLayout) {
  const LhData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  int checked = 0;
  for (const LhConfig& c : data.configs) {
    if (!c.LayoutDependent()) continue;
    ASSERT_FALSE(c.gguf_literal_prompt.empty()) << c.name;
    const LoadedModel* loaded = Model(ModelPath(c.model, "gguf"));
    ASSERT_NE(loaded, nullptr);
    const int64_t vocab = loaded->weights.config.vocab_size;
    const std::span<const int32_t> toks =
        std::span<const int32_t>(data.tokens).subspan(0, c.n_tokens);
    for (const bool decode : {false, true}) {
      SCOPED_TRACE(c.name + (decode ? " decode" : " prompt"));
      const std::vector<float> want =
          ReadLogits(decode ? c.decode_logits : c.prompt_logits, c.n_tokens * vocab);
      const std::vector<float> literal = ReadLogits(
          decode ? c.gguf_literal_decode : c.gguf_literal_prompt, c.n_tokens * vocab);
      auto run = RunPaged(*loaded, c.params, toks, decode ? c.decode_prefix : c.n_tokens);
      ASSERT_TRUE(run->result.status.ok()) << run->result.status;
      ASSERT_EQ(run->result.logits.size(), want.size());
      ::testing::AssertionResult match =
          LogitsMatch(run->result.logits.data(), want.data(), c.n_tokens, vocab, 0);
      if (!match) {
        const bool literal_match =
            LogitsMatch(run->result.logits.data(), literal.data(), c.n_tokens, vocab, 0);
        ADD_FAILURE() << match.message()
                      << (literal_match
                              ? "\n  The GGUF run matches the reference taken in the file's "
                                "(permuted) channel order instead: qbar . k is computed with "
                                "adjacent-pair key channels against NeoX-order value channels."
                              : "\n  It does not match the file-order reference either.");
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 9);
}

// ---------------------------------------------------------------------------
// The full policy is the contiguous path
// ---------------------------------------------------------------------------

TEST_P(LongHeadsFormatTest, FullPolicyEqualsContiguous) {
  for (const std::string model : {"base", "linear_rope"}) {
    const LoadedModel* loaded = Model(ModelPath(model, GetParam()));
    ASSERT_NE(loaded, nullptr);
    const int64_t vocab = loaded->weights.config.vocab_size;
    const std::span<const int32_t> toks(Data().tokens);
    const int64_t n = toks.size();
    LlamaModel llama(loaded->weights);
    for (const int64_t prefix : {n, int64_t{23}}) {
      auto contiguous = llama.NewSequence(n);
      RunResult want = RunCalls(llama, contiguous.get(), toks, prefix);
      ASSERT_TRUE(want.status.ok()) << want.status;
      for (const int32_t w : {1, 3, 64}) {  // 4 and 8: MatchesReference
        SCOPED_TRACE(model + ", chunk_size " + std::to_string(w) + ", prefix " +
                     std::to_string(prefix));
        LongContextParams p;
        p.policy = AttentionPolicy::kFull;
        p.chunk_size = w;
        p.atten_length = 0;  // ignored by `full`
        auto run = RunPaged(*loaded, p, toks, prefix);
        ASSERT_TRUE(run->result.status.ok()) << run->result.status;
        ASSERT_EQ(run->result.logits.size(), want.logits.size());
        EXPECT_TRUE(LogitsMatch(run->result.logits.data(), want.logits.data(), n, vocab, 0));
      }
    }
  }
}

// Sequences of different policies (and the contiguous path) in the same
// Forward calls: a prompt of `decode_prefix` tokens each, then one token per
// call each, which is the reference's decode mode.
TEST_P(LongHeadsFormatTest, MixedBatchMatchesReference) {
  const std::vector<std::string> names = {
      "base_w4_a16_longheads_bound_query_head_chunk", "base_w4_a16_longheads_mean_kv_head_chunk",
      "base_w4_a16_window", "base_w4_a24_longheads_bound_query_head_token"};
  const LoadedModel* loaded = Model(ModelPath("base", GetParam()));
  ASSERT_NE(loaded, nullptr);
  const int64_t vocab = loaded->weights.config.vocab_size;
  BlockPool pool(Geometry(loaded->weights.config), KvDType::kF32, kBigBudget);
  LlamaModel llama(loaded->weights);
  std::vector<std::unique_ptr<SequenceAttention>> seqs;
  std::vector<std::vector<float>> want;
  int64_t prefix = 0, n = 0;
  for (const std::string& name : names) {
    const LhConfig& c = ConfigNamed(name);
    auto seq = PagedSequence::Create(loaded->weights.config, c.params, &pool);
    ASSERT_TRUE(seq.ok()) << seq.status();
    seqs.push_back(*std::move(seq));
    want.push_back(ReadLogits(c.decode_logits, c.n_tokens * vocab));
    prefix = c.decode_prefix;
    n = c.n_tokens;
  }
  seqs.push_back(llama.NewSequence(n));  // contiguous: the full policy's logits
  want.push_back(ReadLogits(ConfigNamed("base_w4_a16_full").prompt_logits, n * vocab));
  const std::span<const int32_t> toks(Data().tokens);
  std::vector<float> logits;
  for (int64_t pos = 0; pos < n;) {
    const int64_t len = pos == 0 ? prefix : 1;
    std::vector<BatchEntry> batch;
    for (size_t e = 0; e < seqs.size(); ++e) {
      // Rotate the order so that each sequence takes every place.
      batch.push_back({seqs[(e + pos) % seqs.size()].get(), toks.subspan(pos, len), true});
    }
    absl::Status st = llama.Forward(batch, &logits);
    ASSERT_TRUE(st.ok()) << "position " << pos << ": " << st;
    ASSERT_EQ(logits.size(), static_cast<size_t>(seqs.size() * len * vocab));
    for (size_t e = 0; e < seqs.size(); ++e) {
      const size_t s = (e + pos) % seqs.size();
      ASSERT_TRUE(LogitsMatch(logits.data() + e * len * vocab, want[s].data() + pos * vocab, len,
                              vocab, pos))
          << (s < names.size() ? names[s] : std::string("contiguous")) << ", position " << pos;
    }
    pos += len;
  }
  seqs.clear();
  EXPECT_EQ(pool.blocks_in_use(), 0);
}

// Ties go to the lower chunk. Layer 0's raw q, k, v depend on the token
// only, so chunks 1..15 holding the same four tokens have identical
// summaries, and every candidate of a layer-0 ranking ties (also summed over
// a group): the k-3 retrieved chunks must be 1..k-3. Bit-identical only when
// every token goes through the same GEMM path: a multi-row GEMM may round
// identical rows differently by position (seen: chunk 7 beat chunk 3 in a
// 64-token prefill), so the tokens go one per call after chunk 0.
TEST_P(LongHeadsFormatTest, TiesGoToTheLowerChunk) {
  const LoadedModel* loaded = Model(ModelPath("base", GetParam()));
  ASSERT_NE(loaded, nullptr);
  std::vector<int32_t> toks = {5, 17, 29, 41};
  for (int i = 0; i < 15; ++i) toks.insert(toks.end(), {101, 7, 250, 64});
  for (const SummaryKind kind : {SummaryKind::kLongHeads, SummaryKind::kBound, SummaryKind::kMean}) {
    for (const GqaSelection gqa : {GqaSelection::kPerQueryHead, GqaSelection::kPerKvHead}) {
      LongContextParams p;
      p.policy = AttentionPolicy::kLongHeads;
      p.chunk_size = 4;
      p.atten_length = 24;  // 6 slots: 3 retrieved
      p.summary = kind;
      p.gqa = gqa;
      SCOPED_TRACE(std::string(SummaryKindName(kind)) + " " + std::string(GqaSelectionName(gqa)));
      auto run = RunPaged(*loaded, p, toks, /*prefix=*/4);  // chunk 0, then one per call
      ASSERT_TRUE(run->result.status.ok()) << run->result.status;
      int64_t checked = 0;
      for (const auto& [key, list] : run->recorder.seen) {
        const auto [layer, head, pos] = key;
        const int32_t c = static_cast<int32_t>(pos / 4);
        if (layer != 0 || c < 6) continue;
        const std::vector<int32_t> want = {0, 1, 2, 3, c - 1, c};
        ASSERT_EQ(list, want) << "head " << head << ", position " << pos;
        ++checked;
      }
      EXPECT_EQ(checked, 6 * (64 - 24));
    }
  }
}

// ---------------------------------------------------------------------------
// Half-precision KV pools
// ---------------------------------------------------------------------------

// F16 / BF16 pools against the F32 pool, same configuration (HF, prompt and
// decode mode). Keys and values are rounded when stored, and the summaries
// are built from the rounded keys. Two measures:
//   * configurations that never rank chunks (full, window, 3 slots, context
//     within the window): max |got - f32| / (1 + |f32|) over all logits, the
//     pure effect of the rounding;
//   * configurations that rank chunks: the fraction of (layer, head,
//     position) chunk lists that differ from F32. A flipped selection moves
//     the logits by O(1) (a different chunk is attended), so an element-wise
//     logit bound would only measure whether a flip happened.
// Measured (see the printed lines; deterministic for this data): logits
// 1.1e-3 (F16) and 8.0e-3 (BF16); lists 0.22 % (F16) and 0.98 % (BF16) of
// 20736. Bounds, with a 4x margin or more: logits 5e-3 (F16) and 3e-2
// (BF16); lists 1 % (F16) and 4 % (BF16).
TEST(LongHeadsReference, HalfPrecisionPoolsStayClose) {
  const LhData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  struct Bound {
    KvDType dtype;
    const char* name;
    double logits, lists;
  };
  const Bound bounds[] = {{KvDType::kF16, "F16", 5e-3, 1e-2},
                          {KvDType::kBF16, "BF16", 3e-2, 4e-2}};
  for (const Bound& b : bounds) {
    double worst = 0;
    std::string worst_config;
    int64_t flips = 0, decisions = 0;
    for (const LhConfig& c : data.configs) {
      const bool ranks = c.Ranks();
      // A subset keeps the test short: all unranked configurations, and the
      // ranked ones of the main grid (w = 4, 4 slots, base model).
      if (ranks && c.name.rfind("base_w4_a16_", 0) != 0) continue;
      const LoadedModel* loaded = Model(ModelPath(c.model, "hf"));
      ASSERT_NE(loaded, nullptr);
      const std::span<const int32_t> toks =
          std::span<const int32_t>(data.tokens).subspan(0, c.n_tokens);
      for (const bool decode : {false, true}) {
        const int64_t prefix = decode ? c.decode_prefix : c.n_tokens;
        auto f32 = RunPaged(*loaded, c.params, toks, prefix, KvDType::kF32);
        auto half = RunPaged(*loaded, c.params, toks, prefix, b.dtype);
        ASSERT_TRUE(f32->result.status.ok()) << f32->result.status;
        ASSERT_TRUE(half->result.status.ok()) << b.name << " " << c.name << ": "
                                              << half->result.status;
        ASSERT_EQ(half->result.logits.size(), f32->result.logits.size());
        if (ranks) {
          for (const auto& [key, list] : f32->recorder.seen) {
            const int64_t c_idx = std::get<2>(key) / c.params.chunk_size;
            if (c_idx < c.params.slots()) continue;  // no ranking there
            ++decisions;
            auto it = half->recorder.seen.find(key);
            if (it == half->recorder.seen.end() || it->second != list) ++flips;
          }
          continue;
        }
        for (const auto& [key, list] : f32->recorder.seen) {
          auto it = half->recorder.seen.find(key);
          ASSERT_TRUE(it != half->recorder.seen.end() && it->second == list)
              << c.name << ": a selection without ranking differs";
        }
        for (size_t i = 0; i < f32->result.logits.size(); ++i) {
          const double ref = f32->result.logits[i];
          const double err = std::fabs(half->result.logits[i] - ref) / (1.0 + std::fabs(ref));
          if (!(err <= worst)) {
            worst = std::isnan(err) ? INFINITY : err;
            worst_config = c.name + (decode ? " decode" : " prompt");
          }
        }
      }
    }
    const double flip_fraction = decisions > 0 ? static_cast<double>(flips) / decisions : 0;
    std::printf("[ kv dtype ] %s: unranked configurations: max |err| / (1 + |f32|) = %.3g "
                "(%s); ranked: %lld of %lld chunk lists differ from F32 (%.3g %%)\n",
                b.name, worst, worst_config.c_str(), static_cast<long long>(flips),
                static_cast<long long>(decisions), 100 * flip_fraction);
    EXPECT_LE(worst, b.logits) << b.name << ", worst in " << worst_config;
    EXPECT_GT(decisions, 10000);
    EXPECT_LE(flip_fraction, b.lists) << b.name;
  }
}

// ---------------------------------------------------------------------------
// Pool accounting, parameters and errors
// ---------------------------------------------------------------------------

TEST(LongHeadsReference, BlocksFollowSequences) {
  const LhData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  const LoadedModel* loaded = Model(data.models.at("base").gguf);
  ASSERT_NE(loaded, nullptr);
  BlockPool pool(Geometry(loaded->weights.config), KvDType::kF16, kBigBudget);
  LlamaModel llama(loaded->weights);
  LongContextParams p;
  p.policy = AttentionPolicy::kLongHeads;
  p.chunk_size = 4;
  p.atten_length = 16;
  const std::span<const int32_t> toks(data.tokens);
  std::vector<std::unique_ptr<PagedSequence>> seqs;
  int64_t expected = 0;
  for (const int64_t n : {int64_t{64}, int64_t{13}, int64_t{1}, int64_t{4}}) {
    auto seq = PagedSequence::Create(loaded->weights.config, p, &pool);
    ASSERT_TRUE(seq.ok()) << seq.status();
    RunResult r = RunCalls(llama, seq->get(), toks.subspan(0, n), std::min<int64_t>(n, 9));
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ((*seq)->length(), n);
    EXPECT_EQ((*seq)->block_table().size(), static_cast<size_t>((n + 3) / 4));
    expected += (n + 3) / 4;
    EXPECT_EQ(pool.blocks_in_use(), expected);
    seqs.push_back(*std::move(seq));
  }
  EXPECT_EQ(pool.used_bytes(), expected * pool.BlockBytes(4));
  seqs.erase(seqs.begin() + 1);
  EXPECT_EQ(pool.blocks_in_use(), expected - 4);
  seqs.clear();
  EXPECT_EQ(pool.blocks_in_use(), 0);
  // Freed blocks keep their storage for reuse: a new sequence takes them
  // without growing the pool.
  const int64_t used = pool.used_bytes();
  auto again = PagedSequence::Create(loaded->weights.config, p, &pool);
  ASSERT_TRUE(again.ok()) << again.status();
  RunResult r = RunCalls(llama, again->get(), toks, 64);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(pool.blocks_in_use(), 16);
  EXPECT_EQ(pool.used_bytes(), used);
  again->reset();
  EXPECT_EQ(pool.blocks_in_use(), 0);
}

TEST(LongHeadsReference, InvalidParametersAreRejected) {
  const LhData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  const LoadedModel* loaded = Model(data.models.at("base").hf);
  ASSERT_NE(loaded, nullptr);
  const ModelConfig& config = loaded->weights.config;
  BlockPool pool(Geometry(config), KvDType::kF32, kBigBudget);
  struct Case {
    AttentionPolicy policy;
    int32_t chunk_size, atten_length;
    const char* names;  // the message must mention this
  };
  const Case cases[] = {
      {AttentionPolicy::kLongHeads, 0, 16, "chunk_size"},
      {AttentionPolicy::kFull, 0, 16, "chunk_size"},
      {AttentionPolicy::kWindow, -4, 16, "chunk_size"},
      {AttentionPolicy::kLongHeads, 4, 18, "atten_length"},
      {AttentionPolicy::kWindow, 4, 0, "atten_length"},
      {AttentionPolicy::kLongHeads, 4, 8, "atten_length"},  // 2 slots
      {AttentionPolicy::kWindow, 8, 8, "atten_length"},     // 1 slot
  };
  for (const Case& c : cases) {
    LongContextParams p;
    p.policy = c.policy;
    p.chunk_size = c.chunk_size;
    p.atten_length = c.atten_length;
    auto seq = PagedSequence::Create(config, p, &pool);
    SCOPED_TRACE(std::string(PolicyName(c.policy)) + " " + std::to_string(c.chunk_size) + "/" +
                 std::to_string(c.atten_length));
    ASSERT_FALSE(seq.ok());
    EXPECT_EQ(seq.status().code(), absl::StatusCode::kInvalidArgument) << seq.status();
    EXPECT_NE(seq.status().message().find(c.names), absl::string_view::npos) << seq.status();
  }
  // The minimum (3 slots) is valid, and `full` ignores atten_length.
  LongContextParams p;
  p.chunk_size = 4;
  p.atten_length = 12;
  EXPECT_TRUE(PagedSequence::Create(config, p, &pool).ok());
  p.policy = AttentionPolicy::kFull;
  p.atten_length = 5;
  EXPECT_TRUE(PagedSequence::Create(config, p, &pool).ok());
  // A pool of another geometry.
  KvGeometry other = Geometry(config);
  other.n_kv_heads = config.n_heads;
  BlockPool wrong(other, KvDType::kF32, kBigBudget);
  auto seq = PagedSequence::Create(config, p, &wrong);
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), absl::StatusCode::kInvalidArgument) << seq.status();
  EXPECT_EQ(pool.blocks_in_use(), 0);
}

// A pool that cannot hold the blocks: RESOURCE_EXHAUSTED from Forward, no
// sequence of the batch commits, and once blocks are free again the same
// calls succeed with the reference logits.
TEST(LongHeadsReference, FullPoolCommitsNothing) {
  const LhData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  const LhConfig& c = ConfigNamed("base_w4_a16_longheads_bound_query_head_token");
  const LoadedModel* loaded = Model(data.models.at("base").hf);
  ASSERT_NE(loaded, nullptr);
  const int64_t vocab = loaded->weights.config.vocab_size;
  const std::vector<float> ref = ReadLogits(c.prompt_logits, c.n_tokens * vocab);
  BlockPool sizing(Geometry(loaded->weights.config), KvDType::kF32, kBigBudget);
  const int64_t block_bytes = sizing.BlockBytes(4);
  // Room for 6 blocks: A and a hog take 2 each; then A needs a third and B
  // three.
  BlockPool pool(Geometry(loaded->weights.config), KvDType::kF32, 6 * block_bytes + 1);
  LlamaModel llama(loaded->weights);
  auto a = PagedSequence::Create(loaded->weights.config, c.params, &pool);
  auto b = PagedSequence::Create(loaded->weights.config, c.params, &pool);
  auto hog = PagedSequence::Create(loaded->weights.config, c.params, &pool);
  ASSERT_TRUE(a.ok() && b.ok() && hog.ok());
  const std::span<const int32_t> toks(data.tokens);
  std::vector<float> logits;

  BatchEntry first{a->get(), toks.subspan(0, 8), true};
  ASSERT_TRUE(llama.Forward(std::span<const BatchEntry>(&first, 1), &logits).ok());
  ASSERT_TRUE(LogitsMatch(logits.data(), ref.data(), 8, vocab, 0));
  BatchEntry hog_entry{hog->get(), toks.subspan(0, 8), false};
  ASSERT_TRUE(llama.Forward(std::span<const BatchEntry>(&hog_entry, 1), &logits).ok());
  ASSERT_EQ(pool.blocks_in_use(), 4);

  // A's next 4 tokens need a fifth block; B's 12 tokens three more.
  std::vector<BatchEntry> batch = {{a->get(), toks.subspan(8, 4), true},
                                   {b->get(), toks.subspan(0, 12), true}};
  absl::Status st = llama.Forward(batch, &logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_EQ((*a)->length(), 8);
  EXPECT_EQ((*b)->length(), 0);
  // Alone, B still does not fit.
  BatchEntry b_alone{b->get(), toks.subspan(0, 12), true};
  st = llama.Forward(std::span<const BatchEntry>(&b_alone, 1), &logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_EQ((*b)->length(), 0);

  // Free the hog: both fit now and give the reference logits.
  hog->reset();
  st = llama.Forward(batch, &logits);
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(logits.size(), static_cast<size_t>(16 * vocab));
  EXPECT_TRUE(LogitsMatch(logits.data(), ref.data() + 8 * vocab, 4, vocab, 8));
  EXPECT_TRUE(LogitsMatch(logits.data() + 4 * vocab, ref.data(), 12, vocab, 0));
  EXPECT_EQ((*a)->length(), 12);
  EXPECT_EQ((*b)->length(), 12);
  // A continues to the end of the reference sequence, one token per call,
  // into blocks freed along the way.
  b->reset();
  for (int64_t pos = 12; pos < c.n_tokens; ++pos) {
    BatchEntry e{a->get(), toks.subspan(pos, 1), true};
    st = llama.Forward(std::span<const BatchEntry>(&e, 1), &logits);
    if (pos < 24) {
      ASSERT_TRUE(st.ok()) << "position " << pos << ": " << st;
      ASSERT_TRUE(LogitsMatch(logits.data(), ref.data() + pos * vocab, 1, vocab, pos));
    } else {
      // Six blocks hold 24 tokens.
      EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
      EXPECT_EQ((*a)->length(), 24);
      break;
    }
  }
  a->reset();
  EXPECT_EQ(pool.blocks_in_use(), 0);
}

}  // namespace
}  // namespace hr
