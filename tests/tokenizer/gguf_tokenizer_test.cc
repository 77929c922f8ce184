// The GGUF-embedded SPM tokenizer against reference data:
//  - llama.cpp's test-tokenizer-0 cases for the LLaMA vocabulary (exact ids);
//  - stories260K's vocabulary: the dragon prompt's ids, and decoding the
//    llama2.c reference generations back to their text files;
//  - streaming detokenization of text split into byte tokens;
//  - load errors on small synthetic GGUF files.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/model/gguf.h"
#include "server/model/tokenizer.h"
#include "tests/test_util.h"
#include "tests/tokenizer/tokenizer_test_data.h"

namespace hr {
namespace {

using ::hr::testing::ParseIds;
using ::hr::testing::ReadFileOrDie;
using ::hr::testing::SharedDir;

std::unique_ptr<Tokenizer> LoadFromGguf(const std::string& path) {
  auto gguf = GgufFile::Open(path);
  EXPECT_TRUE(gguf.ok()) << gguf.status();
  if (!gguf.ok()) return nullptr;
  auto tokenizer = LoadGgufTokenizer(**gguf);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::string Stories(const std::string& file) { return SharedDir() + "/models/" + file; }

class LlamaVocabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tokenizer_ = LoadFromGguf(testing::LlamaVocabGguf()).release(); }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(tokenizer_, nullptr); }
  static const Tokenizer* tokenizer_;
};
const Tokenizer* LlamaVocabTest::tokenizer_ = nullptr;

TEST_F(LlamaVocabTest, Metadata) {
  EXPECT_EQ(tokenizer_->vocab_size(), 32000);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  EXPECT_EQ(tokenizer_->Piece(1), "<s>");
  EXPECT_EQ(tokenizer_->Piece(13), "<0x0A>");
  EXPECT_EQ(tokenizer_->Piece(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(tokenizer_->TokenBytes(15043), " Hello");
  EXPECT_EQ(tokenizer_->TokenBytes(13), "\n");
  EXPECT_EQ(tokenizer_->TokenBytes(0), "");  // <unk>
  EXPECT_EQ(tokenizer_->TokenBytes(1), "");
  EXPECT_EQ(tokenizer_->TokenBytes(2), "");
}

// (a) Every llama.cpp test-tokenizer-0 case, exactly (no BOS), and the
// decoded ids give the input back.
TEST_F(LlamaVocabTest, ReproducesLlamaCppTokenizerCases) {
  const auto cases = testing::ReadVocabTestCases(testing::LlamaVocabGguf());
  ASSERT_EQ(cases.size(), 46u);
  EXPECT_EQ(cases[0].input, "ied 4 \xC2\xBD months");
  EXPECT_EQ(cases[2].input, "");
  EXPECT_TRUE(cases[2].expected.empty());
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "case " << i << ": [" << cases[i].input << "]");
    auto ids = tokenizer_->Encode(cases[i].input, /*add_bos=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, cases[i].expected);
    EXPECT_EQ(tokenizer_->Decode(*ids), cases[i].input);
  }
}

TEST_F(LlamaVocabTest, AddsBos) {
  EXPECT_EQ(tokenizer_->Encode("Hello world", true).value(), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tokenizer_->Encode("", true).value(), (std::vector<int32_t>{1}));
  EXPECT_EQ(tokenizer_->Encode("", false).value(), (std::vector<int32_t>{}));
}

TEST_F(LlamaVocabTest, RejectsInvalidUtf8) {
  EXPECT_EQ(tokenizer_->Encode("abc\xC3", false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokenizer_->Encode("\xED\xA0\x80", true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// (e) Characters split into byte tokens stream out whole, never as broken
// UTF-8, and the stream concatenates to Decode's text.
TEST_F(LlamaVocabTest, StreamsSplitCharactersAsValidUtf8) {
  const std::string text = "\xF0\x9F\xA6\x99 h\xC3\xA9llo \xE6\x88\x91";  // "🦙 héllo 我"
  const std::vector<int32_t> ids = tokenizer_->Encode(text, /*add_bos=*/true).value();
  // 🦙 has no piece of its own: it is four byte tokens <0xF0><0x9F><0xA6><0x99>.
  ASSERT_GE(ids.size(), 6u);
  EXPECT_EQ((std::vector<int32_t>(ids.begin() + 1, ids.begin() + 6)),
            (std::vector<int32_t>{29871, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99}));
  StreamingDetokenizer detok(*tokenizer_);
  std::string streamed;
  std::vector<std::string> pieces;
  for (const int32_t id : ids) {
    pieces.push_back(detok.Push(id));
    EXPECT_TRUE(IsValidUtf8(pieces.back())) << "after id " << id;
    streamed += pieces.back();
  }
  streamed += detok.Flush();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(tokenizer_->Decode(ids), text);
  // The emoji appears in one piece, at its last byte token (index 5).
  EXPECT_EQ(pieces[2], "");
  EXPECT_EQ(pieces[3], "");
  EXPECT_EQ(pieces[4], "");
  EXPECT_EQ(pieces[5], "\xF0\x9F\xA6\x99");
}

TEST_F(LlamaVocabTest, StreamsInvalidByteTokensAsReplacementCharacters) {
  // <0xE6><0x88> (an incomplete 我) then "▁Hello", and a lone <0xFF>.
  const std::vector<int32_t> ids = {1, 3 + 0xE6, 3 + 0x88, 15043, 3 + 0xFF};
  StreamingDetokenizer detok(*tokenizer_);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string piece = detok.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece));
    streamed += piece;
  }
  streamed += detok.Flush();
  const std::string expected = "\xEF\xBF\xBD Hello\xEF\xBF\xBD";
  EXPECT_EQ(streamed, expected);
  EXPECT_EQ(tokenizer_->Decode(ids), expected);
}

// (c) The dragon prompt, with the dummy space and BOS, gives the prompt ids
// the reference run forced: the .ids file lists the *next* token at each
// position, so position 0 (input BOS) lists the first prompt token.
TEST(Stories260KTokenizerTest, EncodesTheDragonPromptLikeLlama2c) {
  auto tokenizer = LoadFromGguf(Stories("stories260K.gguf"));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 512);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->Piece(3), "<0x00>");
  EXPECT_EQ(tokenizer->Piece(258), "<0xFF>");
  const std::vector<int32_t> ids =
      tokenizer->Encode("Once upon a time, a little dragon", /*add_bos=*/true).value();
  const std::vector<int32_t> reference =
      ParseIds(ReadFileOrDie(Stories("stories260K.dragon200.ids")));
  ASSERT_EQ(reference.size(), 200u);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  const std::vector<int32_t> prompt(ids.begin() + 1, ids.end());
  EXPECT_EQ(prompt, std::vector<int32_t>(reference.begin(), reference.begin() + prompt.size()));
  EXPECT_EQ(prompt.size(), 12u);
  EXPECT_EQ(tokenizer->Decode(ids), "Once upon a time, a little dragon");
}

// (d) Decoding the reference generations reproduces llama2.c's text. The .txt
// files end with the "\n" run.c prints after generating; greedy512's last id is
// BOS (where generation stopped), which decodes to nothing. Both runs start
// after BOS, so the first piece loses its leading space (run.c does the same).
TEST(Stories260KTokenizerTest, DecodesReferenceGenerations) {
  auto tokenizer = LoadFromGguf(Stories("stories260K.gguf"));
  ASSERT_NE(tokenizer, nullptr);
  for (const std::string name : {"stories260K.greedy512", "stories260K.dragon200"}) {
    SCOPED_TRACE(name);
    const std::vector<int32_t> ids = ParseIds(ReadFileOrDie(Stories(name + ".ids")));
    ASSERT_FALSE(ids.empty());
    const std::string text = ReadFileOrDie(Stories(name + ".txt"));
    EXPECT_EQ(tokenizer->Decode(ids) + "\n", text);
    // Streaming gives the same text, piece by piece, always valid UTF-8.
    StreamingDetokenizer detok(*tokenizer);
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string piece = detok.Push(id);
      ASSERT_TRUE(IsValidUtf8(piece));
      streamed += piece;
    }
    streamed += detok.Flush();
    EXPECT_EQ(streamed + "\n", text);
  }
  const std::vector<int32_t> greedy =
      ParseIds(ReadFileOrDie(Stories("stories260K.greedy512.ids")));
  EXPECT_EQ(greedy.back(), 1);
}

// A metadata-only GGUF v3 file, built in memory.
class GgufBytes {
 public:
  void AddString(const std::string& key, const std::string& value) {
    Key(key, 8);
    Str(value);
  }
  void AddU32(const std::string& key, uint32_t value) {
    Key(key, 4);
    Raw(value);
  }
  void AddBool(const std::string& key, bool value) {
    Key(key, 7);
    kv_.push_back(value ? 1 : 0);
  }
  void AddStrings(const std::string& key, const std::vector<std::string>& values) {
    Key(key, 9);
    Raw(uint32_t{8});
    Raw(uint64_t{values.size()});
    for (const auto& v : values) Str(v);
  }
  void AddF32s(const std::string& key, const std::vector<float>& values) {
    Key(key, 9);
    Raw(uint32_t{6});
    Raw(uint64_t{values.size()});
    for (const float v : values) Raw(v);
  }
  void AddI32s(const std::string& key, const std::vector<int32_t>& values) {
    Key(key, 9);
    Raw(uint32_t{5});
    Raw(uint64_t{values.size()});
    for (const int32_t v : values) Raw(v);
  }
  std::string Build() const {
    std::string out = "GGUF";
    auto put = [&out](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    put(uint32_t{3});
    put(uint64_t{0});  // tensors
    put(uint64_t{count_});
    out += kv_;
    out.resize((out.size() + 31) / 32 * 32, '\0');
    return out;
  }

 private:
  template <typename T>
  void Raw(T v) {
    kv_.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void Str(const std::string& s) {
    Raw(uint64_t{s.size()});
    kv_ += s;
  }
  void Key(const std::string& key, uint32_t type) {
    ++count_;
    Str(key);
    Raw(type);
  }
  std::string kv_;
  uint64_t count_ = 0;
};

// Parses `bytes` (kept alive by the caller) and loads its tokenizer.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFromBytes(const std::string& bytes) {
  auto gguf = GgufFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                              "synthetic.gguf");
  if (!gguf.ok()) return gguf.status();
  return LoadGgufTokenizer(**gguf);
}

GgufBytes TinyLlamaVocab() {
  GgufBytes g;
  g.AddString("tokenizer.ggml.model", "llama");
  g.AddStrings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a",
                                         "\xE2\x96\x81" "a"});
  g.AddF32s("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -3});
  g.AddI32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  g.AddU32("tokenizer.ggml.bos_token_id", 1);
  g.AddU32("tokenizer.ggml.eos_token_id", 2);
  return g;
}

TEST(GgufTokenizerLoadTest, LoadsSyntheticVocabulary) {
  GgufBytes g = TinyLlamaVocab();
  const std::string bytes = g.Build();
  auto tokenizer = LoadFromBytes(bytes);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->Encode("a a", true).value(), (std::vector<int32_t>{1, 5, 5}));
  g.AddBool("tokenizer.ggml.add_space_prefix", false);
  const std::string no_prefix = g.Build();
  tokenizer = LoadFromBytes(no_prefix);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->Encode("a a", false).value(), (std::vector<int32_t>{4, 5}));
}

TEST(GgufTokenizerLoadTest, OtherTokenizerModelsAreUnimplemented) {
  GgufBytes g;
  g.AddString("tokenizer.ggml.model", "gpt2");
  g.AddStrings("tokenizer.ggml.tokens", {"a", "b"});
  const std::string bytes = g.Build();
  auto tokenizer = LoadFromBytes(bytes);
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(std::string(tokenizer.status().message()).find("gpt2"), std::string::npos);
}

TEST(GgufTokenizerLoadTest, ReportsBrokenVocabularies) {
  {  // no tokenizer at all
    GgufBytes g;
    g.AddString("general.architecture", "llama");
    const std::string bytes = g.Build();
    EXPECT_EQ(LoadFromBytes(bytes).status().code(), absl::StatusCode::kNotFound);
  }
  {  // scores do not match the tokens
    GgufBytes g;
    g.AddString("tokenizer.ggml.model", "llama");
    g.AddStrings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
    g.AddF32s("tokenizer.ggml.scores", {0, 0});
    const std::string bytes = g.Build();
    auto status = LoadFromBytes(bytes).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(status.message()).find("synthetic.gguf"), std::string::npos) << status;
  }
  {  // unknown id outside the vocabulary
    GgufBytes g = TinyLlamaVocab();
    g.AddU32("tokenizer.ggml.unknown_token_id", 99);
    const std::string bytes = g.Build();
    EXPECT_EQ(LoadFromBytes(bytes).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {  // tokens of the wrong type
    GgufBytes g;
    g.AddString("tokenizer.ggml.model", "llama");
    g.AddF32s("tokenizer.ggml.tokens", {1, 2, 3});
    const std::string bytes = g.Build();
    EXPECT_EQ(LoadFromBytes(bytes).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace hr
