// Tokenizer::Decode, StreamingDetokenizer and the UTF-8 helpers.
//
// Invalid UTF-8 is replaced the way the Unicode standard recommends
// ("maximal subparts", as browsers and Python do): each maximal prefix of a
// would-be character that cannot be completed becomes one U+FFFD, and a lone
// invalid byte becomes one U+FFFD. The replacement is decided left to right
// from character boundaries only, so sanitizing a stream piece by piece (as
// StreamingDetokenizer does) gives exactly the same text as sanitizing it
// whole (as Decode does).
//
// Leading-space rule (SentencePiece's dummy prefix): the first piece whose
// bytes are non-empty loses one leading ' ' if it has one. Control tokens
// (BOS/EOS) have empty bytes, so they neither emit text nor count as first.
#include "server/model/tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

namespace hr {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Number of bytes of the character led by `lead`; 0 if `lead` cannot start
// a character (a continuation byte, C0/C1, or F5..FF).
size_t SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether `b` may follow `lead` as the second byte of a character (this is
// where overlongs, surrogates and code points above U+10FFFF are excluded).
bool ValidSecondByte(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
  }
}

// Looks at the character starting at `bytes[pos]`. Returns the number of
// bytes that are a valid (possibly incomplete) prefix of a character, at
// most its full length; 0 when `bytes[pos]` cannot start a character.
// `*complete` tells whether that prefix is the whole character.
size_t ValidPrefixAt(std::string_view bytes, size_t pos, bool* complete) {
  const auto lead = static_cast<uint8_t>(bytes[pos]);
  const size_t need = SequenceLength(lead);
  *complete = false;
  if (need == 0) return 0;
  size_t n = 1;
  while (n < need && pos + n < bytes.size()) {
    const auto b = static_cast<uint8_t>(bytes[pos + n]);
    const bool ok = n == 1 ? ValidSecondByte(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++n;
  }
  *complete = n == need;
  return n;
}

// Start of a trailing character that is valid so far but incomplete, or
// bytes.size() when there is none (the whole input can be emitted now).
size_t HeldBackStart(std::string_view bytes) {
  const size_t first = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t pos = bytes.size(); pos > first;) {
    --pos;
    const auto b = static_cast<uint8_t>(bytes[pos]);
    if (b >= 0x80 && b <= 0xBF) continue;  // continuation: look further back
    bool complete = false;
    const size_t n = ValidPrefixAt(bytes, pos, &complete);
    return (!complete && n > 0 && pos + n == bytes.size()) ? pos : bytes.size();
  }
  return bytes.size();
}

// Appends `bytes` to `out`, replacing each maximal invalid subpart by U+FFFD.
void AppendSanitized(std::string_view bytes, std::string* out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    const size_t n = ValidPrefixAt(bytes, pos, &complete);
    if (complete) {
      out->append(bytes.substr(pos, n));
      pos += n;
    } else {
      out->append(kReplacement);
      pos += n > 0 ? n : 1;
    }
  }
}

// Bytes of `id` with the first-piece leading space removed when `*at_start`.
std::string PieceBytes(const Tokenizer& tokenizer, int32_t id, bool* at_start) {
  std::string bytes = tokenizer.TokenBytes(id);
  if (*at_start && !bytes.empty()) {
    *at_start = false;
    if (bytes[0] == ' ') bytes.erase(0, 1);
  }
  return bytes;
}

}  // namespace

size_t CompleteUtf8Prefix(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    const size_t n = ValidPrefixAt(bytes, pos, &complete);
    if (!complete) break;
    pos += n;
  }
  return pos;
}

bool IsValidUtf8(std::string_view text) { return CompleteUtf8Prefix(text) == text.size(); }

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  bool at_start = true;
  for (const int32_t id : ids) bytes += PieceBytes(*this, id, &at_start);
  std::string text;
  AppendSanitized(bytes, &text);
  return text;
}

std::string StreamingDetokenizer::Push(int32_t id) {
  pending_ += PieceBytes(tokenizer_, id, &at_start_);
  const size_t emit = HeldBackStart(pending_);
  std::string text;
  AppendSanitized(std::string_view(pending_).substr(0, emit), &text);
  pending_.erase(0, emit);
  return text;
}

std::string StreamingDetokenizer::Flush() {
  std::string text;
  AppendSanitized(pending_, &text);
  pending_.clear();
  return text;
}

absl::Status CheckTokenizerFits(const Tokenizer* tokenizer, int64_t vocab_size,
                                const std::string& file) {
  if (tokenizer == nullptr || tokenizer->vocab_size() <= vocab_size) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(file, ": the tokenizer has ",
                                                 tokenizer->vocab_size(),
                                                 " tokens but the model's embedding table only ",
                                                 vocab_size));
}

}  // namespace hr
