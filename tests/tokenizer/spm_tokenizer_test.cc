// MakeSpmTokenizer on small hand-made vocabularies: merge order (score, then
// leftmost), byte fallback, dummy prefix, token bytes, and input validation.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/model/tokenizer.h"

namespace hr {
namespace {

// ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then `normal` pieces.
SpmVocab MakeVocab(const std::vector<std::pair<std::string, float>>& normal,
                   bool with_bytes = true) {
  SpmVocab v;
  v.pieces = {"<unk>", "<s>", "</s>"};
  v.types = {SpmVocab::kUnknown, SpmVocab::kControl, SpmVocab::kControl};
  v.scores = {0, 0, 0};
  if (with_bytes) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      v.pieces.push_back(name);
      v.types.push_back(SpmVocab::kByte);
      v.scores.push_back(0);
    }
  }
  for (const auto& [piece, score] : normal) {
    v.pieces.push_back(piece);
    v.types.push_back(SpmVocab::kNormal);
    v.scores.push_back(score);
  }
  return v;
}

std::unique_ptr<Tokenizer> Make(SpmVocab v) {
  auto t = MakeSpmTokenizer(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

// Encodes and renders the result as pieces, "|"-separated, for readable checks.
std::string Pieces(const Tokenizer& t, std::string_view text, bool add_bos = false) {
  auto ids = t.Encode(text, add_bos);
  if (!ids.ok()) return ids.status().ToString();
  std::string out;
  for (const int32_t id : *ids) out += (out.empty() ? "" : "|") + t.Piece(id);
  return out;
}

constexpr char kU2581[] = "\xE2\x96\x81";
const std::string kSp = kU2581;

TEST(SpmTokenizerTest, HighestScoreMergesFirst) {
  SpmVocab v = MakeVocab({{"a", 0}, {"b", 0}, {"c", 0}, {"ab", -2}, {"bc", -1}});
  v.add_space_prefix = false;
  EXPECT_EQ(Pieces(*Make(v), "abc"), "a|bc");
  v = MakeVocab({{"a", 0}, {"b", 0}, {"c", 0}, {"ab", -1}, {"bc", -2}});
  v.add_space_prefix = false;
  EXPECT_EQ(Pieces(*Make(v), "abc"), "ab|c");
}

TEST(SpmTokenizerTest, TiesGoToTheLeftmostPair) {
  SpmVocab v = MakeVocab({{"a", 0}, {"aa", -1}});
  v.add_space_prefix = false;
  auto t = Make(v);
  EXPECT_EQ(Pieces(*t, "aaa"), "aa|a");
  EXPECT_EQ(Pieces(*t, "aaaaa"), "aa|aa|a");
}

TEST(SpmTokenizerTest, MergesRepeatUntilNoPairIsInTheVocabulary) {
  SpmVocab v = MakeVocab({{"a", 0}, {"b", 0}, {"c", 0}, {"ab", -1}, {"abc", -5}, {"bc", -9}});
  v.add_space_prefix = false;
  EXPECT_EQ(Pieces(*Make(v), "abcab"), "abc|ab");
}

TEST(SpmTokenizerTest, DummyPrefixAndSpaceEscaping) {
  auto t = Make(MakeVocab({{kSp, 0}, {"a", 0}, {kSp + "a", -1}, {kSp + kSp, -2}}));
  EXPECT_EQ(Pieces(*t, "a"), kSp + "a");
  EXPECT_EQ(Pieces(*t, "a a"), kSp + "a|" + kSp + "a");
  // "▁▁a": "▁a" (-1) outranks "▁▁" (-2), and "▁▁a" is not a piece.
  EXPECT_EQ(Pieces(*t, " a"), kSp + "|" + kSp + "a");
  EXPECT_EQ(Pieces(*t, "a", /*add_bos=*/true), "<s>|" + kSp + "a");
  SpmVocab no_prefix = MakeVocab({{kSp, 0}, {"a", 0}, {kSp + "a", -1}});
  no_prefix.add_space_prefix = false;
  EXPECT_EQ(Pieces(*Make(no_prefix), "a a"), "a|" + kSp + "a");
}

TEST(SpmTokenizerTest, EmptyInputHasNoDummyPrefix) {
  auto t = Make(MakeVocab({{kSp, 0}}));
  EXPECT_EQ(t->Encode("", false).value(), std::vector<int32_t>{});
  EXPECT_EQ(t->Encode("", true).value(), std::vector<int32_t>{1});
}

TEST(SpmTokenizerTest, UnknownCharactersFallBackToBytes) {
  auto t = Make(MakeVocab({{kSp, 0}, {"a", 0}}));
  // "ü" = C3 BC, not in the vocabulary.
  EXPECT_EQ(Pieces(*t, "\xC3\xBC" "a"), kSp + "|<0xC3>|<0xBC>|a");
  EXPECT_EQ(t->Decode(t->Encode("\xC3\xBC" "a", true).value()), "\xC3\xBC" "a");
  // Without byte tokens, such a character becomes one <unk> per byte.
  SpmVocab no_bytes = MakeVocab({{kSp, 0}, {"a", 0}}, /*with_bytes=*/false);
  EXPECT_EQ(Pieces(*Make(no_bytes), "\xC3\xBC"), kSp + "|<unk>|<unk>");
}

TEST(SpmTokenizerTest, TokenBytesConventions) {
  SpmVocab v = MakeVocab({{kSp + "the", 0}, {"x" + kSp + "y", 0}});
  v.pieces.push_back(kSp + "user");
  v.types.push_back(SpmVocab::kUserDefined);
  v.scores.push_back(0);
  v.pieces.push_back("<unused0>");
  v.types.push_back(SpmVocab::kUnused);
  v.scores.push_back(0);
  auto t = Make(v);
  EXPECT_EQ(t->TokenBytes(259), " the");
  EXPECT_EQ(t->TokenBytes(260), "x y");
  EXPECT_EQ(t->TokenBytes(261), kSp + "user");  // user-defined: verbatim
  EXPECT_EQ(t->TokenBytes(262), "");            // unused
  EXPECT_EQ(t->TokenBytes(0), "");              // <unk>
  EXPECT_EQ(t->TokenBytes(1), "");              // <s>
  EXPECT_EQ(t->TokenBytes(3 + 0x0A), "\n");
  EXPECT_EQ(t->TokenBytes(3 + 0xFF), "\xFF");
  EXPECT_EQ(t->Piece(3 + 0x0A), "<0x0A>");
  EXPECT_EQ(t->vocab_size(), 263);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
}

TEST(SpmTokenizerTest, RejectsInvalidUtf8Input) {
  auto t = Make(MakeVocab({{kSp, 0}}));
  EXPECT_EQ(t->Encode("ab\xFF", false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t->Encode("\xE6\x88", true).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SpmTokenizerTest, RejectsInconsistentVocabularies) {
  auto code = [](SpmVocab v) { return MakeSpmTokenizer(std::move(v)).status().code(); };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(SpmVocab{}), kInvalid);
  SpmVocab v = MakeVocab({{"a", 0}});
  v.scores.pop_back();
  EXPECT_EQ(code(v), kInvalid);
  v = MakeVocab({{"a", 0}});
  v.types.pop_back();
  EXPECT_EQ(code(v), kInvalid);
  v = MakeVocab({{"a", 0}});
  v.types.back() = 7;
  EXPECT_EQ(code(v), kInvalid);
  v = MakeVocab({{"a", 0}});
  v.types.back() = SpmVocab::kByte;  // "a" is not <0xXX>
  EXPECT_EQ(code(v), kInvalid);
  v = MakeVocab({{"a", 0}});
  v.bos_id = 1000;
  EXPECT_EQ(code(v), kInvalid);
  v = MakeVocab({{"a", 0}});
  v.eos_id = -1;
  EXPECT_EQ(code(v), kInvalid);
  // Scores and types may be absent (all 0 / all normal).
  v = MakeVocab({{"a", 0}});
  v.scores.clear();
  v.types.clear();
  EXPECT_TRUE(MakeSpmTokenizer(v).ok());
}

}  // namespace
}  // namespace hr
