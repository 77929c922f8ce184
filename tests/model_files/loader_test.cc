// Model loading: GGUF (the real stories260K and small built models in every
// dtype) and Hugging Face directories (single file, shards, tied), plus the
// errors a broken model must give.
#include "server/model/loader.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/model/weights.h"
#include "tests/model_files/gguf_writer.h"
#include "tests/model_files/safetensors_writer.h"
#include "tests/test_util.h"

namespace hr {
namespace {

namespace fs = std::filesystem;
using ::hr::testing::GgufWriter;
using ::hr::testing::HfLlamaOptions;
using ::hr::testing::LlamaGgufOptions;
using ::hr::testing::TinyLlamaConfig;
using ::testing::HasSubstr;

std::string StoriesPath() { return hr::testing::SharedDir() + "/models/stories260K.gguf"; }

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = hr::testing::MakeTempDir("loader"); }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteGguf(const std::string& name, const ModelConfig& c,
                        const LlamaGgufOptions& options = {}, uint64_t seed = 5) {
    GgufWriter w;
    hr::testing::AddLlamaGguf(w, c, seed, options);
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(hr::testing::WriteFile(path, w.Build()));
    return path;
  }
  std::string WriteGguf(const std::string& name, const GgufWriter& w) {
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(hr::testing::WriteFile(path, w.Build()));
    return path;
  }
  std::string MakeHfDir(const std::string& name, const ModelConfig& c,
                        const HfLlamaOptions& options = {}) {
    const std::string d = dir_ + "/" + name;
    fs::create_directories(d);
    absl::Status s = hr::testing::WriteHfLlamaDir(d, c, 11, options);
    EXPECT_TRUE(s.ok()) << s;
    return d;
  }

  std::string dir_;
};

void ExpectError(const absl::StatusOr<LoadedModel>& m, absl::StatusCode code,
                 const std::vector<std::string>& parts) {
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), code) << m.status();
  for (const std::string& p : parts) EXPECT_THAT(m.status().message(), HasSubstr(p));
}

void ExpectMatrixNear(const Matrix& m, int64_t rows, int64_t cols, const std::vector<float>& want,
                      float tol) {
  ASSERT_NE(m.data, nullptr);
  EXPECT_EQ(m.rows, rows);
  EXPECT_EQ(m.cols, cols);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data) % alignof(float), 0u);
  ASSERT_EQ(want.size(), static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(m.data[i], want[i], tol) << i;
}

TEST_F(LoaderTest, Stories260K) {
  auto m = LoadGgufModel(StoriesPath());
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig& c = m->weights.config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.trained_context, 2048);  // as the file declares (really trained at 512)
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_linear_scale, 1.0f);
  EXPECT_EQ(c.rope_style, RopeStyle::kAdjacent);
  EXPECT_FALSE(c.tied_embeddings);
  const LlamaWeights& w = m->weights;
  ASSERT_EQ(w.layers.size(), 5u);
  EXPECT_NE(w.output.data, nullptr);
  EXPECT_NE(w.output.data, w.tok_embd.data);  // present in the file
  EXPECT_EQ(w.tok_embd.rows, 512);
  EXPECT_EQ(w.tok_embd.cols, 64);
  EXPECT_EQ(w.layers[0].wk.rows, 32);
  EXPECT_EQ(w.layers[0].wk.cols, 64);
  EXPECT_EQ(w.layers[4].w_down.rows, 64);
  EXPECT_EQ(w.layers[4].w_down.cols, 172);
  EXPECT_EQ(w.output_norm.rows, 1);
  EXPECT_EQ(w.output_norm.cols, 64);
  // F32 weights are the file's bytes (token_embd at offset 14176).
  const std::string bytes = hr::testing::ReadFileOrDie(StoriesPath());
  EXPECT_EQ(std::memcmp(w.tok_embd.data, bytes.data() + 14176, 64 * 512 * 4), 0);
  EXPECT_EQ(std::memcmp(w.output.data, w.tok_embd.data, 64 * 512 * 4), 0);  // a copy, per README
  ASSERT_NE(m->tokenizer, nullptr);
  EXPECT_EQ(m->tokenizer->vocab_size(), 512);

  auto via_dispatch = LoadModel(StoriesPath());
  ASSERT_TRUE(via_dispatch.ok()) << via_dispatch.status();
  EXPECT_EQ(via_dispatch->weights.config.dim, 64);
}

TEST_F(LoaderTest, GgufAllDTypes) {
  ModelConfig c = TinyLlamaConfig();
  c.dim = 32;  // Q8_0 rows are whole blocks of 32
  c.head_dim = 8;
  c.ffn_dim = 64;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    SCOPED_TRACE(std::string(DTypeName(dtype)));
    LlamaGgufOptions o;
    o.dtype = dtype;
    auto m = LoadGgufModel(WriteGguf("tiny.gguf", c, o, /*seed=*/5));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->weights.config.dim, c.dim);
    EXPECT_EQ(m->weights.config.vocab_size, c.vocab_size);
    EXPECT_EQ(m->tokenizer, nullptr);
    const float tol = dtype == DType::kF32 ? 0 : dtype == DType::kF16 ? 1e-3f : 1e-2f;
    // Tensor k of AddLlamaGguf is seeded with seed + k (1-based).
    ExpectMatrixNear(m->weights.tok_embd, c.vocab_size, c.dim,
                     hr::testing::PseudoRandom(5 + 1, c.vocab_size * c.dim), tol);
    ExpectMatrixNear(m->weights.layers[0].wq, c.dim, c.dim,
                     hr::testing::PseudoRandom(5 + 3, c.dim * c.dim), tol);
    ExpectMatrixNear(m->weights.layers[1].w_down, c.dim, c.ffn_dim,
                     hr::testing::PseudoRandom(5 + 19, c.dim * c.ffn_dim), tol);
  }
}

TEST_F(LoaderTest, GgufTiedRopeScalingAndTokenizer) {
  ModelConfig c = TinyLlamaConfig();
  c.rope_linear_scale = 4.0f;
  c.rope_theta = 500000.0f;
  LlamaGgufOptions o;
  o.with_output = false;
  o.with_tokenizer = true;
  auto m = LoadGgufModel(WriteGguf("tied.gguf", c, o));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->weights.config.tied_embeddings);
  EXPECT_EQ(m->weights.output.data, m->weights.tok_embd.data);
  EXPECT_EQ(m->weights.config.rope_linear_scale, 4.0f);
  EXPECT_EQ(m->weights.config.rope_theta, 500000.0f);
  ASSERT_NE(m->tokenizer, nullptr);
  EXPECT_EQ(m->tokenizer->vocab_size(), c.vocab_size);
}

TEST_F(LoaderTest, GgufUnalignedF32IsCopied) {
  hr::testing::GgufLayout layout;
  std::string bytes;
  for (int pad = 1; pad <= 4; ++pad) {  // pick a header length that is not a multiple of 4
    GgufWriter w;
    w.set_alignment(1);
    w.AddAlignmentKey();
    w.AddString("pad", std::string(pad, 'x'));
    hr::testing::AddLlamaGguf(w, TinyLlamaConfig(), 5);
    bytes = w.Build(&layout);
    if (layout.data_start % 4 != 0) break;
  }
  ASSERT_NE(layout.data_start % 4, 0u);
  const std::string path = dir_ + "/unaligned.gguf";
  ASSERT_TRUE(hr::testing::WriteFile(path, bytes));
  auto m = LoadGgufModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig c = TinyLlamaConfig();
  ExpectMatrixNear(m->weights.tok_embd, c.vocab_size, c.dim,
                   hr::testing::PseudoRandom(5 + 1, c.vocab_size * c.dim), 0);
}

TEST_F(LoaderTest, GgufWrongShapeNamesTensor) {
  LlamaGgufOptions o;
  o.reshape_tensor = "blk.1.attn_k.weight";
  const std::string path = WriteGguf("wrong-shape.gguf", TinyLlamaConfig(), o);
  ExpectError(LoadGgufModel(path), absl::StatusCode::kInvalidArgument,
              {path, "blk.1.attn_k.weight", "expected ggml dims {16, 8}", "got ggml dims {8, 16}"});
  o.reshape_tensor = "output_norm.weight";
  const std::string path2 = WriteGguf("wrong-norm.gguf", TinyLlamaConfig(), o);
  ExpectError(LoadGgufModel(path2), absl::StatusCode::kInvalidArgument,
              {path2, "output_norm.weight", "{16}", "{17}"});
}

TEST_F(LoaderTest, GgufMissingTensorNamesTensor) {
  for (const char* name : {"blk.1.ffn_up.weight", "token_embd.weight", "output_norm.weight",
                           "blk.0.attn_norm.weight"}) {
    LlamaGgufOptions o;
    o.skip_tensor = name;
    const std::string path = WriteGguf("missing.gguf", TinyLlamaConfig(), o);
    ExpectError(LoadGgufModel(path), absl::StatusCode::kNotFound, {path, name});
  }
}

TEST_F(LoaderTest, GgufBadMetadata) {
  using C = absl::StatusCode;
  {
    GgufWriter w;
    w.AddString("general.architecture", "gpt2");
    ExpectError(LoadGgufModel(WriteGguf("arch.gguf", w)), C::kUnimplemented, {"arch.gguf", "gpt2"});
  }
  {
    GgufWriter w;
    ExpectError(LoadGgufModel(WriteGguf("noarch.gguf", w)), C::kNotFound,
                {"noarch.gguf", "general.architecture"});
  }
  // Keys AddLlamaGguf does not write are appended after its config keys.
  {
    GgufWriter w;
    hr::testing::AddLlamaGguf(w, TinyLlamaConfig(), 1);
    w.AddString("llama.rope.scaling.type", "yarn");
    ExpectError(LoadGgufModel(WriteGguf("yarn.gguf", w)), C::kUnimplemented, {"yarn.gguf", "yarn"});
  }
  {
    ModelConfig c = TinyLlamaConfig();
    c.n_kv_heads = 3;  // does not divide 4 heads
    ExpectError(LoadGgufModel(WriteGguf("gqa.gguf", c)), C::kInvalidArgument, {"gqa.gguf", "n_kv_heads"});
  }
  {
    ModelConfig c = TinyLlamaConfig();
    c.n_heads = 3;  // 16 % 3 != 0
    c.n_kv_heads = 3;
    ExpectError(LoadGgufModel(WriteGguf("heads.gguf", c)), C::kInvalidArgument,
                {"heads.gguf", "head count"});
  }
  {
    LlamaGgufOptions o;
    o.block_count = 1000000;  // fails at the first missing layer, no huge allocation
    ExpectError(LoadGgufModel(WriteGguf("layers.gguf", TinyLlamaConfig(), o)), C::kNotFound,
                {"layers.gguf", "blk.2."});
  }
}

TEST_F(LoaderTest, LoadModelDispatch) {
  ExpectError(LoadModel(dir_ + "/nope.gguf"), absl::StatusCode::kNotFound, {"nope.gguf"});
  const std::string junk = dir_ + "/junk.bin";
  ASSERT_TRUE(hr::testing::WriteFile(junk, "not a model"));
  ExpectError(LoadModel(junk), absl::StatusCode::kInvalidArgument, {"junk.bin", "offset 0"});
  const std::string hf = MakeHfDir("hf", TinyLlamaConfig());
  auto m = LoadModel(hf);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->weights.config.rope_style, RopeStyle::kNeoX);
  ExpectError(LoadModel(hf + "/model.safetensors"), absl::StatusCode::kInvalidArgument,
              {"config.json"});
}

TEST_F(LoaderTest, HfDirectoryAllDTypes) {
  const ModelConfig c = TinyLlamaConfig();
  for (const char* dtype : {"F32", "F16", "BF16"}) {
    SCOPED_TRACE(dtype);
    HfLlamaOptions o;
    o.dtype = dtype;
    const std::string d = MakeHfDir(std::string("hf-") + dtype, c, o);
    auto m = LoadHfModel(d);
    ASSERT_TRUE(m.ok()) << m.status();
    const ModelConfig& got = m->weights.config;
    EXPECT_EQ(got.dim, c.dim);
    EXPECT_EQ(got.n_layers, c.n_layers);
    EXPECT_EQ(got.n_heads, c.n_heads);
    EXPECT_EQ(got.n_kv_heads, c.n_kv_heads);
    EXPECT_EQ(got.head_dim, c.head_dim);
    EXPECT_EQ(got.ffn_dim, c.ffn_dim);
    EXPECT_EQ(got.vocab_size, c.vocab_size);
    EXPECT_EQ(got.trained_context, c.trained_context);
    EXPECT_EQ(got.rope_style, RopeStyle::kNeoX);
    EXPECT_FALSE(got.tied_embeddings);
    EXPECT_EQ(m->tokenizer, nullptr);
    const float tol = std::string(dtype) == "F32" ? 0 : std::string(dtype) == "F16" ? 1e-3f : 1e-2f;
    ExpectMatrixNear(m->weights.tok_embd, c.vocab_size, c.dim,
                     hr::testing::PseudoRandom(11 + 1, c.vocab_size * c.dim), tol);
    ExpectMatrixNear(m->weights.layers[0].wk, 8, c.dim,
                     hr::testing::PseudoRandom(11 + 4, 8 * c.dim), tol);
    ExpectMatrixNear(m->weights.output, c.vocab_size, c.dim,
                     hr::testing::PseudoRandom(11 + 21, c.vocab_size * c.dim), tol);
  }
}

TEST_F(LoaderTest, HfShardedTiedAndScaled) {
  ModelConfig c = TinyLlamaConfig();
  c.rope_linear_scale = 2.0f;
  HfLlamaOptions o;
  o.shards = 3;
  o.tied = true;
  const std::string d = MakeHfDir("sharded", c, o);
  ASSERT_TRUE(fs::exists(d + "/model.safetensors.index.json"));
  ASSERT_TRUE(fs::exists(d + "/model-00003-of-00003.safetensors"));
  auto m = LoadHfModel(d);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->weights.config.tied_embeddings);
  EXPECT_EQ(m->weights.output.data, m->weights.tok_embd.data);
  EXPECT_EQ(m->weights.config.rope_linear_scale, 2.0f);
  ExpectMatrixNear(m->weights.output_norm, 1, c.dim, [&] {
    std::vector<float> v = hr::testing::PseudoRandom(11 + 20, c.dim);
    for (float& x : v) x = 1.0f + 0.1f * x;
    return v;
  }(), 0);
}

TEST_F(LoaderTest, HfWithSentencePieceTokenizer) {
  ModelConfig c = TinyLlamaConfig();
  c.vocab_size = 32000;  // llama2 tokenizer
  const std::string d = MakeHfDir("with-tok", c);
  fs::copy_file(hr::testing::SharedDir() + "/tokenizers/llama2-tokenizer.model",
                d + "/tokenizer.model");
  auto m = LoadHfModel(d);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_NE(m->tokenizer, nullptr);
  EXPECT_EQ(m->tokenizer->vocab_size(), 32000);

  // A tokenizer bigger than the embedding table is rejected.
  const std::string small = MakeHfDir("small-vocab", TinyLlamaConfig());
  fs::copy_file(d + "/tokenizer.model", small + "/tokenizer.model");
  ExpectError(LoadHfModel(small), absl::StatusCode::kInvalidArgument, {"tokenizer.model", "32000"});
}

TEST_F(LoaderTest, HfErrors) {
  using C = absl::StatusCode;
  const ModelConfig c = TinyLlamaConfig();
  ExpectError(LoadHfModel(dir_ + "/absent"), C::kNotFound, {"absent"});
  {
    HfLlamaOptions o;
    o.write_config = false;
    const std::string d = MakeHfDir("no-config", c, o);
    ExpectError(LoadHfModel(d), C::kNotFound, {d + "/config.json"});
  }
  {
    HfLlamaOptions o;
    o.skip_tensor = "model.layers.1.mlp.up_proj.weight";
    const std::string d = MakeHfDir("missing", c, o);
    ExpectError(LoadHfModel(d), C::kNotFound,
                {d + "/model.safetensors", "model.layers.1.mlp.up_proj.weight"});
  }
  {
    HfLlamaOptions o;
    o.shards = 2;
    o.skip_tensor = "model.norm.weight";
    const std::string d = MakeHfDir("missing-sharded", c, o);
    ExpectError(LoadHfModel(d), C::kNotFound, {"model.safetensors.index.json", "model.norm.weight"});
  }
  {
    HfLlamaOptions o;
    o.reshape_tensor = "model.layers.0.self_attn.o_proj.weight";
    const std::string d = MakeHfDir("wrong-shape", c, o);
    ExpectError(LoadHfModel(d), C::kInvalidArgument,
                {d + "/model.safetensors", "model.layers.0.self_attn.o_proj.weight",
                 "expected shape [16, 16]", "got shape [16, 17]"});
  }
  {
    HfLlamaOptions o;
    o.architecture = "GPT2LMHeadModel";
    const std::string d = MakeHfDir("gpt2", c, o);
    ExpectError(LoadHfModel(d), C::kUnimplemented, {"config.json", "GPT2LMHeadModel"});
  }
  {
    const std::string d = MakeHfDir("no-weights", c);
    fs::remove(d + "/model.safetensors");
    ExpectError(LoadHfModel(d), C::kNotFound, {d, "model.safetensors"});
  }
  {
    const std::string d = MakeHfDir("bad-json", c);
    ASSERT_TRUE(hr::testing::WriteFile(d + "/config.json", "{\"hidden_size\": "));
    ExpectError(LoadHfModel(d), C::kInvalidArgument, {"config.json", "JSON"});
  }
  auto edit_config = [&](const std::string& name, const std::function<void(nlohmann::json&)>& f) {
    const std::string d = MakeHfDir(name, c);
    nlohmann::json j = nlohmann::json::parse(hr::testing::ReadFileOrDie(d + "/config.json"));
    f(j);
    EXPECT_TRUE(hr::testing::WriteFile(d + "/config.json", j.dump()));
    return d;
  };
  ExpectError(LoadHfModel(edit_config("dyn", [](nlohmann::json& j) {
                j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
              })),
              C::kUnimplemented, {"config.json", "dynamic"});
  ExpectError(LoadHfModel(edit_config("no-hidden", [](nlohmann::json& j) { j.erase("hidden_size"); })),
              C::kInvalidArgument, {"config.json", "hidden_size"});
  ExpectError(LoadHfModel(edit_config("str-hidden", [](nlohmann::json& j) { j["hidden_size"] = "16"; })),
              C::kInvalidArgument, {"config.json", "hidden_size"});
  ExpectError(LoadHfModel(edit_config("neg-layers", [](nlohmann::json& j) { j["num_hidden_layers"] = -2; })),
              C::kInvalidArgument, {"config.json", "num_hidden_layers"});
  ExpectError(LoadHfModel(edit_config("gelu", [](nlohmann::json& j) { j["hidden_act"] = "gelu"; })),
              C::kUnimplemented, {"config.json", "gelu"});
  {
    // A default num_key_value_heads (= heads) then mismatches the k_proj shape.
    const std::string d = edit_config("no-kv", [](nlohmann::json& j) { j.erase("num_key_value_heads"); });
    ExpectError(LoadHfModel(d), C::kInvalidArgument, {"k_proj", "expected shape [16, 16]"});
  }
  {
    HfLlamaOptions o;
    o.shards = 2;
    const std::string d = MakeHfDir("traversal", c, o);
    nlohmann::json j = nlohmann::json::parse(hr::testing::ReadFileOrDie(d + "/model.safetensors.index.json"));
    j["weight_map"]["model.norm.weight"] = "../../etc/passwd";
    ASSERT_TRUE(hr::testing::WriteFile(d + "/model.safetensors.index.json", j.dump()));
    ExpectError(LoadHfModel(d), C::kInvalidArgument, {"model.safetensors.index.json", "model.norm.weight"});
  }
  {
    // A corrupt shard: the parser's error names the shard file.
    const std::string d = MakeHfDir("corrupt", c);
    std::string bytes = hr::testing::ReadFileOrDie(d + "/model.safetensors");
    ASSERT_TRUE(hr::testing::WriteFile(d + "/model.safetensors", bytes.substr(0, bytes.size() - 3)));
    ExpectError(LoadHfModel(d), C::kInvalidArgument, {d + "/model.safetensors", "tensor '"});
  }
}

TEST(WeightsTest, RandomWeightsAreDeterministic) {
  ModelConfig c = TinyLlamaConfig();
  c.tied_embeddings = false;
  LlamaWeights a = RandomLlamaWeights(c, 42);
  LlamaWeights b = RandomLlamaWeights(c, 42);
  LlamaWeights other = RandomLlamaWeights(c, 43);
  ASSERT_EQ(a.layers.size(), 2u);
  EXPECT_EQ(a.layers[1].wk.rows, 8);
  EXPECT_EQ(a.layers[1].wk.cols, 16);
  EXPECT_EQ(a.layers[0].w_down.rows, 16);
  EXPECT_EQ(a.layers[0].w_down.cols, 32);
  EXPECT_EQ(std::memcmp(a.layers[1].w_up.data, b.layers[1].w_up.data, 32 * 16 * 4), 0);
  EXPECT_NE(std::memcmp(a.layers[1].w_up.data, other.layers[1].w_up.data, 32 * 16 * 4), 0);
  EXPECT_EQ(a.layers[0].attn_norm.data[3], 1.0f);
  EXPECT_NE(a.output.data, a.tok_embd.data);
  // Mean ~0, std ~0.02.
  double sum = 0, sq = 0;
  const Matrix& e = a.tok_embd;
  const int64_t n = e.rows * e.cols;
  for (int64_t i = 0; i < n; ++i) {
    sum += e.data[i];
    sq += e.data[i] * e.data[i];
  }
  EXPECT_NEAR(sum / n, 0.0, 0.005);
  EXPECT_NEAR(std::sqrt(sq / n), 0.02, 0.003);
  c.tied_embeddings = true;
  LlamaWeights tied = RandomLlamaWeights(c, 1);
  EXPECT_EQ(tied.output.data, tied.tok_embd.data);
}

}  // namespace
}  // namespace hr
