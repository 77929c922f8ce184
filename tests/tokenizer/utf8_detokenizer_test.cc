// UTF-8 helpers, Tokenizer::Decode and StreamingDetokenizer over a fake
// vocabulary whose token bytes are given directly (no data files needed).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/model/tokenizer.h"

namespace hr {
namespace {

constexpr char kFffd[] = "\xEF\xBF\xBD";

// Token i < 256 is the single byte i; then a few multi-byte pieces; the last
// one is a control token (empty bytes), as BOS/EOS are.
class FakeTokenizer : public Tokenizer {
 public:
  FakeTokenizer() {
    for (int b = 0; b < 256; ++b) bytes_.push_back(std::string(1, static_cast<char>(b)));
    for (const char* piece : {" Hello", " world", " ", "\xE6\x88\x91", "\xF0\x9F", "\xA6\x99",
                              "\xE2\x96\x81x", "abc", ""}) {
      bytes_.push_back(piece);
    }
  }
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view, bool) const override {
    return absl::UnimplementedError("fake");
  }
  std::string TokenBytes(int32_t id) const override { return bytes_.at(id); }
  std::string Piece(int32_t id) const override { return bytes_.at(id); }
  int32_t vocab_size() const override { return static_cast<int32_t>(bytes_.size()); }
  int32_t bos_id() const override { return kControl; }
  int32_t eos_id() const override { return kControl; }

  static constexpr int32_t kHello = 256, kWorld = 257, kSpace = 258, kWo = 259, kEmojiHead = 260,
                           kEmojiTail = 261, kControl = 264;

 private:
  std::vector<std::string> bytes_;
};

std::vector<int32_t> ByteIds(std::string_view bytes) {
  std::vector<int32_t> ids;
  for (const char c : bytes) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

// Pushes `ids` one by one; returns the pieces (Flush's last).
std::vector<std::string> Stream(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  StreamingDetokenizer detok(tokenizer);
  std::vector<std::string> pieces;
  for (const int32_t id : ids) pieces.push_back(detok.Push(id));
  pieces.push_back(detok.Flush());
  return pieces;
}

std::string Join(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

TEST(Utf8Test, IsValidUtf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii\n\t"));
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xE6\x88\x91 \xF0\x9F\xA6\x99"));  // héllo 我 🦙
  EXPECT_TRUE(IsValidUtf8(std::string_view("a\0b", 3)));
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));       // U+D7FF
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("ab\xE6\x88"));        // truncated
}

TEST(Utf8Test, CompleteUtf8Prefix) {
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6\x88"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6\x88\x91"), 5u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\xA6"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\xA6\x99"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("a\x80" "b"), 1u);  // stops at an invalid byte
}

TEST(DecodeTest, DropsLeadingSpaceOfFirstNonEmptyPiece) {
  FakeTokenizer t;
  using F = FakeTokenizer;
  EXPECT_EQ(t.Decode({F::kHello, F::kWorld}), "Hello world");
  EXPECT_EQ(t.Decode({F::kControl, F::kHello, F::kWorld, F::kControl}), "Hello world");
  // The dummy-prefix piece alone is the first piece: the next keeps its space.
  EXPECT_EQ(t.Decode({F::kControl, F::kSpace, F::kHello}), " Hello");
  EXPECT_EQ(t.Decode({'a', F::kHello}), "a Hello");
  EXPECT_EQ(t.Decode({}), "");
  EXPECT_EQ(t.Decode({F::kControl}), "");
}

TEST(DecodeTest, ReplacesInvalidBytes) {
  FakeTokenizer t;
  EXPECT_EQ(t.Decode(ByteIds("a\xFF" "b")), std::string("a") + kFffd + "b");
  EXPECT_EQ(t.Decode(ByteIds("\xE6\x88")), kFffd);                           // truncated: one
  EXPECT_EQ(t.Decode(ByteIds("\xE6\x88" "a")), std::string(kFffd) + "a");
  EXPECT_EQ(t.Decode(ByteIds("\xC0\xAF")), std::string(kFffd) + kFffd);      // C0 never leads
  EXPECT_EQ(t.Decode(ByteIds("\xED\xA0\x80")), std::string(kFffd) + kFffd + kFffd);
  EXPECT_EQ(t.Decode(ByteIds("\xF0\x9F\xA6" "x")), std::string(kFffd) + "x");
  EXPECT_EQ(t.Decode(ByteIds("\xF0\x9F\xA6\x99")), "\xF0\x9F\xA6\x99");
}

TEST(StreamingDetokenizerTest, HoldsBackSplitCharacters) {
  FakeTokenizer t;
  using F = FakeTokenizer;
  EXPECT_EQ(Stream(t, ByteIds("\xF0\x9F\xA6\x99")),
            (std::vector<std::string>{"", "", "", "\xF0\x9F\xA6\x99", ""}));
  EXPECT_EQ(Stream(t, {F::kEmojiHead, F::kEmojiTail, F::kWo}),
            (std::vector<std::string>{"", "\xF0\x9F\xA6\x99", "\xE6\x88\x91", ""}));
  EXPECT_EQ(Stream(t, {F::kControl, F::kHello, F::kWorld, F::kControl}),
            (std::vector<std::string>{"", "Hello", " world", "", ""}));
}

TEST(StreamingDetokenizerTest, InvalidAndTruncatedBytesBecomeReplacement) {
  FakeTokenizer t;
  EXPECT_EQ(Stream(t, ByteIds("\xE6\x88")), (std::vector<std::string>{"", "", kFffd}));
  EXPECT_EQ(Stream(t, ByteIds("\xE6\x88" "a")),
            (std::vector<std::string>{"", "", std::string(kFffd) + "a", ""}));
  EXPECT_EQ(Stream(t, ByteIds("\xFF" "a")), (std::vector<std::string>{kFffd, "a", ""}));
  // E0 may start a character; E0 80 never can: both are emitted at once then.
  EXPECT_EQ(Stream(t, ByteIds("\xE0\x80")),
            (std::vector<std::string>{"", std::string(kFffd) + kFffd, ""}));
}

// Property: for random id sequences (random bytes, valid or not, plus
// multi-byte pieces and control tokens), streaming yields only valid UTF-8 and
// concatenates to exactly Decode's text.
TEST(StreamingDetokenizerTest, MatchesDecodeOnRandomSequences) {
  FakeTokenizer t;
  std::mt19937 rng(1234);
  // Bias towards UTF-8-looking bytes so that complete characters occur often.
  const std::vector<int32_t> interesting = {'a', ' ', 0x80, 0x9F, 0xA6, 0xBF, 0xC3, 0xA9, 0xE6,
                                            0x88, 0x91, 0xF0, 0x9F, 0x99, 0xED, 0xA0, 0xE0,
                                            0xF4, 0x90, 0xFF, 0xC0};
  for (int trial = 0; trial < 5000; ++trial) {
    std::vector<int32_t> ids;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      const uint32_t r = rng() % 4;
      if (r == 0) ids.push_back(static_cast<int32_t>(rng() % t.vocab_size()));
      else ids.push_back(interesting[rng() % interesting.size()]);
    }
    const std::vector<std::string> pieces = Stream(t, ids);
    for (const auto& p : pieces) ASSERT_TRUE(IsValidUtf8(p)) << "trial " << trial;
    ASSERT_EQ(Join(pieces), t.Decode(ids)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace hr
