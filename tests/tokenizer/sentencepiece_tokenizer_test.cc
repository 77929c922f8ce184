// The server's reader of the LLaMA-2 `tokenizer.model`: it gives llama.cpp's
// reference ids on every test-tokenizer-0 case, and it agrees with the
// SentencePiece library itself and with the GGUF tokenizer of the same
// vocabulary, piece by piece and on random inputs.
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/model/gguf.h"
#include "server/model/sentencepiece_model.h"
#include "server/model/tokenizer.h"
#include "tests/tokenizer/libsentencepiece_tokenizer.h"
#include "tests/tokenizer/tokenizer_test_data.h"

namespace hr {
namespace {

class SentencePieceTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto sp = LoadSentencePieceTokenizer(testing::Llama2SentencePieceModel());
    if (sp.ok()) sp_ = std::move(sp).value().release();
    auto lib = LoadLibSentencePieceTokenizer(testing::Llama2SentencePieceModel());
    if (lib.ok()) lib_ = std::move(lib).value().release();
    auto gguf = GgufFile::Open(testing::LlamaVocabGguf());
    if (gguf.ok()) {
      auto t = LoadGgufTokenizer(**gguf);
      if (t.ok()) gguf_ = std::move(t).value().release();
    }
  }
  static void TearDownTestSuite() {
    delete sp_;
    delete lib_;
    delete gguf_;
    sp_ = lib_ = gguf_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(sp_, nullptr) << "cannot load " << testing::Llama2SentencePieceModel();
    ASSERT_NE(lib_, nullptr) << "SentencePiece cannot load " << testing::Llama2SentencePieceModel();
    ASSERT_NE(gguf_, nullptr) << "cannot load " << testing::LlamaVocabGguf();
  }
  static const Tokenizer* sp_;    // the server's tokenizer.model reader
  static const Tokenizer* lib_;   // the SentencePiece library
  static const Tokenizer* gguf_;
};
const Tokenizer* SentencePieceTokenizerTest::sp_ = nullptr;
const Tokenizer* SentencePieceTokenizerTest::lib_ = nullptr;
const Tokenizer* SentencePieceTokenizerTest::gguf_ = nullptr;

TEST_F(SentencePieceTokenizerTest, Metadata) {
  EXPECT_EQ(sp_->vocab_size(), 32000);
  EXPECT_EQ(sp_->bos_id(), 1);
  EXPECT_EQ(sp_->eos_id(), 2);
  EXPECT_EQ(sp_->Piece(13), "<0x0A>");
  EXPECT_EQ(sp_->TokenBytes(13), "\n");
  EXPECT_EQ(sp_->TokenBytes(1), "");
  EXPECT_EQ(sp_->TokenBytes(15043), " Hello");
}

TEST_F(SentencePieceTokenizerTest, ReproducesLlamaCppTokenizerCases) {
  const auto cases = testing::ReadVocabTestCases(testing::LlamaVocabGguf());
  ASSERT_EQ(cases.size(), 46u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "case " << i << ": [" << cases[i].input << "]");
    auto ids = sp_->Encode(cases[i].input, /*add_bos=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, cases[i].expected);
    EXPECT_EQ(lib_->Encode(cases[i].input, /*add_bos=*/false).value(), cases[i].expected);
    EXPECT_EQ(sp_->Decode(*ids), cases[i].input);
  }
  EXPECT_EQ(sp_->Encode("Hello world", true).value(), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(sp_->Encode("", true).value(), (std::vector<int32_t>{1}));
}

TEST_F(SentencePieceTokenizerTest, SamePiecesAndBytesAsGguf) {
  ASSERT_EQ(sp_->vocab_size(), gguf_->vocab_size());
  ASSERT_EQ(sp_->vocab_size(), lib_->vocab_size());
  EXPECT_EQ(sp_->bos_id(), lib_->bos_id());
  EXPECT_EQ(sp_->eos_id(), lib_->eos_id());
  for (int32_t id = 0; id < sp_->vocab_size(); ++id) {
    ASSERT_EQ(sp_->Piece(id), gguf_->Piece(id)) << "id " << id;
    ASSERT_EQ(sp_->Piece(id), lib_->Piece(id)) << "id " << id;
    ASSERT_EQ(sp_->TokenBytes(id), gguf_->TokenBytes(id)) << "id " << id;
    ASSERT_EQ(sp_->TokenBytes(id), lib_->TokenBytes(id)) << "id " << id;
  }
}

// Random strings over fragments chosen to stress merges: spaces and
// newlines, multi-byte characters with and without pieces of their own,
// text that looks like control or byte pieces, and a literal "▁".
TEST_F(SentencePieceTokenizerTest, AgreesWithGgufOnRandomInputs) {
  const std::vector<std::string> fragments = {
      "a", "b", "e", "t", "h", "s", " ", "  ", "\n", "\t", "\xC3\xA9", "\xE6\x88\x91",
      "\xF0\x9F\xA6\x99", "\xD0\x94", "<", ">", "0", "x", "1", "A", "'", "!", ".", ",", "the",
      "ing", "ll", "<s>", "</s>", "<unk>", "<0x0A>", "\xE2\x96\x81"};
  std::mt19937 rng(42);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string text;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) text += fragments[rng() % fragments.size()];
    const auto a = sp_->Encode(text, false);
    const auto b = gguf_->Encode(text, false);
    const auto c = lib_->Encode(text, false);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    ASSERT_EQ(*a, *b) << "input [" << text << "]";
    ASSERT_EQ(*a, *c) << "input [" << text << "]";
    // "▁" in the input decodes as a space: the only round-trip exception.
    if (text.find("\xE2\x96\x81") == std::string::npos) {
      ASSERT_EQ(sp_->Decode(*a), text);
    }
  }
}

TEST_F(SentencePieceTokenizerTest, RejectsInvalidUtf8) {
  EXPECT_EQ(sp_->Encode("abc\xC3", false).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SentencePieceLoadTest, MalformedAndUnigramModelsAreRejected) {
  EXPECT_EQ(ParseSentencePieceModel("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSentencePieceModel("\x0a\xff").status().code(), absl::StatusCode::kInvalidArgument);
  // One piece "a" (field 1 { 1: "a" }), no trainer spec: unigram by default.
  EXPECT_EQ(ParseSentencePieceModel(std::string("\x0a\x03\x0a\x01" "a", 5)).status().code(),
            absl::StatusCode::kUnimplemented);
  // The same with trainer_spec { model_type: BPE }.
  auto bpe = ParseSentencePieceModel(std::string("\x0a\x03\x0a\x01" "a" "\x12\x02\x18\x02", 9));
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  EXPECT_EQ(bpe->pieces, std::vector<std::string>{"a"});
}

TEST(SentencePieceLoadTest, MissingFileIsAnError) {
  auto sp = LoadSentencePieceTokenizer(testing::SharedDir() + "/tokenizers/no-such.model");
  EXPECT_FALSE(sp.ok());
  EXPECT_NE(std::string(sp.status().message()).find("no-such.model"), std::string::npos);
}

}  // namespace
}  // namespace hr
