// A tiny random LLaMA (GQA 3:1), written by tiny_llama.py as a Hugging Face
// safetensors directory (NeoX RoPE, two shards) and as GGUF (adjacent-pair
// RoPE, permuted Q/K) from the same weights, must give the logits of the
// script's independent float64 numpy forward pass: for a whole-sequence
// prefill, step-by-step decode, chunked prefill and batches mixing sequences,
// in F32, F16, BF16 and Q8_0 (the reference runs on the dequantized weights),
// with linear RoPE scaling and with tied embeddings. GGUF and HF logits must
// also agree with each other.
//
// Tolerance, element-wise: |got - ref| <= 1e-5 + 1e-4 * |ref|.
//
// The script runs once per version of it: its output is cached under
// $HEADROOM_BUILD_DIR/test-tmp/tiny-llama-<hash of the script>.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/model/llama_model.h"
#include "server/model/loader.h"
#include "tests/reference/reference_util.h"

namespace hr {
namespace {

using reftest::LogitsMatch;
using reftest::ReadLogits;
using reftest::ReadText;

// Every variant tiny_llama.py writes (checked against its manifest).
const std::vector<std::string> kVariants = {
    "base_hf_f32",   "base_hf_bf16",         "base_hf_f16", "base_gguf_f32",
    "base_gguf_f16", "base_gguf_q8_0",       "linear_rope_hf_f32",
    "linear_rope_gguf_f32", "tied_hf_f32", "tied_gguf_f32",
};

// ---------------------------------------------------------------------------
// Generating and reading the reference data
// ---------------------------------------------------------------------------

struct VariantInfo {
  std::string name, model, format, dtype, path;  // path: absolute
  std::vector<std::string> logits_files;         // absolute, one per sequence
};

struct ReferenceData {
  std::string error;  // non-empty when generation or parsing failed
  std::string dir;
  std::vector<std::vector<int32_t>> sequences;
  std::map<std::string, nlohmann::json> models;  // model name -> config
  std::map<std::string, VariantInfo> variants;
};

ReferenceData LoadReferenceData() {
  ReferenceData data;
  // Generated once per version of the script.
  data.dir = reftest::CachedScriptOutput(HR_TINY_LLAMA_SCRIPT, {HR_TINY_LLAMA_SCRIPT},
                                         "tiny-llama", &data.error);
  if (!data.error.empty()) return data;

  bool ok = false;
  const std::string text = ReadText(data.dir + "/manifest.json", &ok);
  if (!ok) {
    data.error = "cannot read " + data.dir + "/manifest.json";
    return data;
  }
  try {
    const nlohmann::json m = nlohmann::json::parse(text);
    for (const auto& seq : m.at("sequences")) {
      data.sequences.push_back(seq.get<std::vector<int32_t>>());
    }
    for (const auto& [name, cfg] : m.at("models").items()) data.models[name] = cfg;
    for (const auto& v : m.at("variants")) {
      VariantInfo info;
      info.name = v.at("name").get<std::string>();
      info.model = v.at("model").get<std::string>();
      info.format = v.at("format").get<std::string>();
      info.dtype = v.at("dtype").get<std::string>();
      info.path = data.dir + "/" + v.at("path").get<std::string>();
      for (const auto& f : v.at("logits")) {
        info.logits_files.push_back(data.dir + "/" + f.get<std::string>());
      }
      data.variants[info.name] = info;
    }
  } catch (const std::exception& e) {
    data.error = "bad manifest " + data.dir + "/manifest.json: " + e.what();
  }
  return data;
}

const ReferenceData& Data() {
  static const ReferenceData* data = new ReferenceData(LoadReferenceData());
  return *data;
}

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

class TinyModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const ReferenceData& data = Data();
    ASSERT_TRUE(data.error.empty()) << data.error;
    auto it = data.variants.find(GetParam());
    ASSERT_NE(it, data.variants.end()) << "variant " << GetParam() << " not in the manifest";
    variant_ = &it->second;
    config_ = &data.models.at(variant_->model);
    vocab_ = (*config_)["vocab_size"].get<int64_t>();
    sequences_ = &data.sequences;
    ASSERT_EQ(variant_->logits_files.size(), sequences_->size());
    for (size_t s = 0; s < sequences_->size(); ++s) {
      ref_.push_back(ReadLogits(variant_->logits_files[s], (*sequences_)[s].size() * vocab_));
    }
    absl::StatusOr<LoadedModel> loaded = LoadModel(variant_->path);
    ASSERT_TRUE(loaded.ok()) << "loading " << variant_->path << ": " << loaded.status();
    loaded_ = std::make_unique<LoadedModel>(*std::move(loaded));
    model_ = std::make_unique<LlamaModel>(loaded_->weights);
  }

  const std::vector<int32_t>& Seq(size_t s) const { return (*sequences_)[s]; }
  const float* RefRow(size_t s, int64_t pos) const { return ref_[s].data() + pos * vocab_; }

  // One Forward call of one entry; returns its logits.
  std::vector<float> Run(SequenceAttention* seq, std::span<const int32_t> tokens,
                         bool all_logits) {
    BatchEntry entry{seq, tokens, all_logits};
    std::vector<float> logits;
    absl::Status st = model_->Forward(std::span<const BatchEntry>(&entry, 1), &logits);
    EXPECT_TRUE(st.ok()) << st;
    EXPECT_EQ(logits.size(), (all_logits ? tokens.size() : 1) * vocab_);
    return logits;
  }

  const VariantInfo* variant_ = nullptr;
  const nlohmann::json* config_ = nullptr;
  const std::vector<std::vector<int32_t>>* sequences_ = nullptr;
  int64_t vocab_ = 0;
  std::vector<std::vector<float>> ref_;  // per sequence, [n_tokens, vocab]
  std::unique_ptr<LoadedModel> loaded_;
  std::unique_ptr<LlamaModel> model_;
};

// The configuration read from the file is the one the script wrote.
TEST_P(TinyModelTest, ConfigFromFile) {
  const ModelConfig& c = loaded_->weights.config;
  const nlohmann::json& want = *config_;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.dim, want["dim"].get<int64_t>());
  EXPECT_EQ(c.n_layers, want["n_layers"].get<int64_t>());
  EXPECT_EQ(c.n_heads, want["n_heads"].get<int64_t>());
  EXPECT_EQ(c.n_kv_heads, want["n_kv_heads"].get<int64_t>());
  EXPECT_EQ(c.head_dim, want["head_dim"].get<int64_t>());
  EXPECT_EQ(c.ffn_dim, want["ffn_dim"].get<int64_t>());
  EXPECT_EQ(c.vocab_size, want["vocab_size"].get<int64_t>());
  EXPECT_EQ(c.trained_context, want["context_length"].get<int64_t>());
  EXPECT_FLOAT_EQ(c.rms_eps, want["rms_eps"].get<float>());
  EXPECT_FLOAT_EQ(c.rope_theta, want["rope_theta"].get<float>());
  EXPECT_FLOAT_EQ(c.rope_linear_scale, want["rope_linear_scale"].get<float>());
  EXPECT_EQ(c.tied_embeddings, want["tied"].get<bool>());
  EXPECT_EQ(c.rope_style, variant_->format == "hf" ? RopeStyle::kNeoX : RopeStyle::kAdjacent);
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
  EXPECT_EQ(loaded_->tokenizer, nullptr) << "the test files ship no tokenizer";
  EXPECT_EQ(loaded_->weights.layers.size(), static_cast<size_t>(c.n_layers));
}

// (a, e) The whole sequence in one Forward call, logits at every position.
TEST_P(TinyModelTest, PrefillMatchesReference) {
  for (size_t s = 0; s < sequences_->size(); ++s) {
    SCOPED_TRACE("sequence " + std::to_string(s));
    auto seq = model_->NewSequence(64);
    std::vector<float> logits = Run(seq.get(), Seq(s), /*all_logits=*/true);
    ASSERT_EQ(logits.size(), ref_[s].size());
    EXPECT_TRUE(LogitsMatch(logits.data(), ref_[s].data(), Seq(s).size(), vocab_, 0));
    EXPECT_EQ(seq->length(), static_cast<int64_t>(Seq(s).size()));
  }
  // all_logits = false: only the last position.
  auto seq = model_->NewSequence(64);
  std::vector<float> last = Run(seq.get(), Seq(0), /*all_logits=*/false);
  ASSERT_EQ(last.size(), static_cast<size_t>(vocab_));
  const int64_t n = Seq(0).size();
  EXPECT_TRUE(LogitsMatch(last.data(), RefRow(0, n - 1), 1, vocab_, n - 1));
}

// (b) One token per Forward call.
TEST_P(TinyModelTest, StepByStepDecodeMatchesReference) {
  for (size_t s = 0; s < sequences_->size(); ++s) {
    SCOPED_TRACE("sequence " + std::to_string(s));
    auto seq = model_->NewSequence(Seq(s).size());  // exactly enough
    for (size_t p = 0; p < Seq(s).size(); ++p) {
      std::vector<float> logits =
          Run(seq.get(), std::span<const int32_t>(Seq(s)).subspan(p, 1), /*all_logits=*/p % 2 == 1);
      ASSERT_EQ(logits.size(), static_cast<size_t>(vocab_));
      ASSERT_TRUE(LogitsMatch(logits.data(), RefRow(s, p), 1, vocab_, p));
      ASSERT_EQ(seq->length(), static_cast<int64_t>(p + 1));
    }
  }
}

// (c) 7 tokens, then 13, then single tokens.
TEST_P(TinyModelTest, ChunkedPrefillMatchesReference) {
  for (size_t s = 0; s < sequences_->size(); ++s) {
    SCOPED_TRACE("sequence " + std::to_string(s));
    const std::vector<int32_t>& toks = Seq(s);
    auto seq = model_->NewSequence(toks.size());
    const int64_t n = toks.size();
    int64_t pos = 0;
    for (int chunk = 0; pos < n; ++chunk) {
      const int64_t len = std::min<int64_t>(chunk == 0 ? 7 : chunk == 1 ? 13 : 1, n - pos);
      const bool all = chunk % 2 == 0;
      std::vector<float> logits =
          Run(seq.get(), std::span<const int32_t>(toks).subspan(pos, len), all);
      const int64_t rows = all ? len : 1;
      const int64_t first = all ? pos : pos + len - 1;
      ASSERT_EQ(logits.size(), static_cast<size_t>(rows * vocab_));
      ASSERT_TRUE(LogitsMatch(logits.data(), RefRow(s, first), rows, vocab_, first))
          << "chunk " << chunk << " (" << len << " tokens from position " << pos << ")";
      pos += len;
      ASSERT_EQ(seq->length(), pos);
    }
  }
}

// (d) Several sequences in each Forward call, mixing prefill runs and decode
// steps of different lengths, in varying order: each gets its own logits.
TEST_P(TinyModelTest, BatchedSequencesMatchReference) {
  // Chunk sizes per sequence; after its list a sequence decodes one at a time.
  const std::vector<std::vector<int64_t>> schedule = {
      {10, 1, 1, 12, 1, 1, 1, 5}, {1, 1, 1, 20}, {5, 5, 1, 6}};
  const size_t n_seq = sequences_->size();
  ASSERT_EQ(n_seq, schedule.size());
  std::vector<std::unique_ptr<SequenceAttention>> seqs;
  for (size_t s = 0; s < n_seq; ++s) seqs.push_back(model_->NewSequence(Seq(s).size() + 3));
  std::vector<int64_t> pos(n_seq, 0);
  for (int step = 0;; ++step) {
    struct Part {
      size_t s;
      int64_t first, rows;
    };
    std::vector<BatchEntry> batch;
    std::vector<Part> parts;
    for (size_t i = 0; i < n_seq; ++i) {
      const size_t s = step % 2 == 0 ? i : n_seq - 1 - i;
      const int64_t n = Seq(s).size();
      if (pos[s] >= n) continue;
      const int64_t want = step < static_cast<int>(schedule[s].size()) ? schedule[s][step] : 1;
      const int64_t len = std::min(want, n - pos[s]);
      const bool all = (step + s) % 2 == 0;
      batch.push_back(BatchEntry{seqs[s].get(),
                                 std::span<const int32_t>(Seq(s)).subspan(pos[s], len), all});
      parts.push_back(Part{s, all ? pos[s] : pos[s] + len - 1, all ? len : 1});
      pos[s] += len;
    }
    if (batch.empty()) break;
    std::vector<float> logits;
    absl::Status st = model_->Forward(batch, &logits);
    ASSERT_TRUE(st.ok()) << "step " << step << ": " << st;
    int64_t total_rows = 0;
    for (const Part& p : parts) total_rows += p.rows;
    ASSERT_EQ(logits.size(), static_cast<size_t>(total_rows * vocab_)) << "step " << step;
    int64_t offset = 0;
    for (size_t e = 0; e < parts.size(); ++e) {
      const Part& p = parts[e];
      EXPECT_TRUE(LogitsMatch(logits.data() + offset * vocab_, RefRow(p.s, p.first), p.rows,
                              vocab_, p.first))
          << "step " << step << ", batch entry " << e << " (sequence " << p.s << ", "
          << batch[e].tokens.size() << " tokens)";
      EXPECT_EQ(seqs[p.s]->length(), pos[p.s]);
      offset += p.rows;
    }
  }
}

std::string VariantName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Variants, TinyModelTest, ::testing::ValuesIn(kVariants), VariantName);

// ---------------------------------------------------------------------------
// Whole-manifest and cross-file tests
// ---------------------------------------------------------------------------

TEST(TinyModelReference, ManifestListsTheTestedVariants) {
  const ReferenceData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  std::set<std::string> want(kVariants.begin(), kVariants.end()), got;
  for (const auto& [name, v] : data.variants) got.insert(name);
  EXPECT_EQ(got, want);
  ASSERT_EQ(data.sequences.size(), 3u);
  EXPECT_EQ(data.sequences[0].size(), 40u);
}

// (f) The GGUF and the HF file of the same F32 weights give the same logits.
TEST(TinyModelReference, GgufAndHfAgree) {
  const ReferenceData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  for (const std::string model : {"base", "linear_rope", "tied"}) {
    SCOPED_TRACE(model);
    absl::StatusOr<LoadedModel> gguf = LoadModel(data.variants.at(model + "_gguf_f32").path);
    absl::StatusOr<LoadedModel> hf = LoadModel(data.variants.at(model + "_hf_f32").path);
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    ASSERT_TRUE(hf.ok()) << hf.status();
    LlamaModel gm(gguf->weights), hm(hf->weights);
    const int64_t vocab = gguf->weights.config.vocab_size;
    for (size_t s = 0; s < data.sequences.size(); ++s) {
      SCOPED_TRACE("sequence " + std::to_string(s));
      const std::vector<int32_t>& toks = data.sequences[s];
      auto gs = gm.NewSequence(toks.size());
      auto hs = hm.NewSequence(toks.size());
      BatchEntry ge{gs.get(), toks, true}, he{hs.get(), toks, true};
      std::vector<float> gl, hl;
      ASSERT_TRUE(gm.Forward(std::span<const BatchEntry>(&ge, 1), &gl).ok());
      ASSERT_TRUE(hm.Forward(std::span<const BatchEntry>(&he, 1), &hl).ok());
      ASSERT_EQ(gl.size(), toks.size() * vocab);
      ASSERT_EQ(hl.size(), gl.size());
      EXPECT_TRUE(LogitsMatch(gl.data(), hl.data(), toks.size(), vocab, 0));
    }
  }
}

// Invalid entries and capacity errors commit nothing, in any sequence of the
// batch, and leave the sequences usable.
TEST(TinyModelReference, ErrorsCommitNothing) {
  const ReferenceData& data = Data();
  ASSERT_TRUE(data.error.empty()) << data.error;
  const VariantInfo& v = data.variants.at("base_gguf_f32");
  absl::StatusOr<LoadedModel> loaded = LoadModel(v.path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaModel model(loaded->weights);
  const int64_t vocab = loaded->weights.config.vocab_size;
  const std::vector<int32_t>& toks = data.sequences[0];
  auto a = model.NewSequence(toks.size());
  auto small = model.NewSequence(8);
  std::vector<float> logits;

  const std::vector<int32_t> too_big = {1, 2, static_cast<int32_t>(vocab)};
  const std::vector<int32_t> negative = {1, -1};
  const std::vector<int32_t> empty;
  const std::vector<int32_t> nine(9, 3);
  const std::span<const int32_t> head = std::span<const int32_t>(toks).subspan(0, 5);
  for (const auto* bad : {&too_big, &negative, &empty}) {
    std::vector<BatchEntry> batch = {{a.get(), head, true}, {small.get(), *bad, false}};
    absl::Status st = model.Forward(batch, &logits);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_EQ(a->length(), 0);
    EXPECT_EQ(small->length(), 0);
  }
  {
    std::vector<BatchEntry> batch = {{a.get(), head, true}, {small.get(), nine, false}};
    absl::Status st = model.Forward(batch, &logits);
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
    EXPECT_EQ(a->length(), 0);
    EXPECT_EQ(small->length(), 0);
  }
  // Both still work and give the reference logits.
  const std::vector<float> ref = ReadLogits(v.logits_files[0], toks.size() * vocab);
  BatchEntry ok{a.get(), toks, true};
  ASSERT_TRUE(model.Forward(std::span<const BatchEntry>(&ok, 1), &logits).ok());
  ASSERT_EQ(logits.size(), ref.size());
  EXPECT_TRUE(LogitsMatch(logits.data(), ref.data(), toks.size(), vocab, 0));
  BatchEntry ok_small{small.get(), head, true};
  ASSERT_TRUE(model.Forward(std::span<const BatchEntry>(&ok_small, 1), &logits).ok());
  ASSERT_EQ(logits.size(), static_cast<size_t>(5 * vocab));
  EXPECT_TRUE(LogitsMatch(logits.data(), ref.data(), 5, vocab, 0));
}

}  // namespace
}  // namespace hr
