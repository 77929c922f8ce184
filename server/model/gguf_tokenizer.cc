// The LLaMA SentencePiece-style tokenizer embedded in GGUF files, encoding
// exactly as llama.cpp's llm_tokenizer_spm does:
//   1. ' ' -> "▁" (U+2581), and a "▁" dummy prefix when add_space_prefix
//      (none for empty text, which encodes to no tokens);
//   2. each UTF-8 character is a symbol;
//   3. repeatedly merge the adjacent pair whose concatenation is a vocabulary
//      piece with the highest score (ties: the leftmost pair), via a priority
//      queue of bigrams whose stale entries are skipped;
//   4. each final symbol is its piece's id, or, when it is not in the
//      vocabulary (only possible for single characters), one <0xXX> byte
//      token per byte (the unknown id if the vocabulary lacks byte tokens).
// Like llama.cpp, every piece (control ones included) takes part in merges,
// and when a piece occurs twice the later id wins. User-defined pieces are
// plain pieces here (llama.cpp additionally splits them out before merging).
//
// Decoding (TokenBytes): normal pieces with "▁" -> ' '; byte tokens -> their
// byte; user-defined pieces verbatim; control, unknown and unused tokens ->
// "" (SentencePiece would print " ⁇ " for <unk>; we emit nothing).
#include <cstdint>
#include <cstdio>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/common/status.h"
#include "server/model/gguf.h"
#include "server/model/tokenizer.h"

namespace hr {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t next = s.find(from, pos);
    if (next == std::string_view::npos) break;
    out.append(s.substr(pos, next - pos));
    out.append(to);
    pos = next + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

// Parses "<0xAB>" (upper- or lower-case hex); -1 if `piece` is not of that form.
int ParseByteToken(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (const char c : piece.substr(3, 2)) {
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Lets the piece map be searched with a std::string_view (no copy per lookup).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class GgufSpmTokenizer : public Tokenizer {
 public:
  explicit GgufSpmTokenizer(SpmVocab vocab) : vocab_(std::move(vocab)) {
    for (size_t i = 0; i < vocab_.pieces.size(); ++i) {
      piece_to_id_[vocab_.pieces[i]] = static_cast<int32_t>(i);
    }
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      const auto it = piece_to_id_.find(std::string_view(name));
      byte_to_id_[b] = it != piece_to_id_.end() ? it->second : vocab_.unk_id;
    }
  }

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_bos) const override;
  std::string TokenBytes(int32_t id) const override;
  std::string Piece(int32_t id) const override {
    HR_CHECK(id >= 0 && id < vocab_size(), "token id out of range");
    return vocab_.pieces[id];
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.pieces.size()); }
  int32_t bos_id() const override { return vocab_.bos_id; }
  int32_t eos_id() const override { return vocab_.eos_id; }

 private:
  // -1 when `piece` is not in the vocabulary.
  int32_t Find(std::string_view piece) const {
    const auto it = piece_to_id_.find(piece);
    return it != piece_to_id_.end() ? it->second : -1;
  }
  void Tokenize(const std::string& text, std::vector<int32_t>* out) const;

  SpmVocab vocab_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> piece_to_id_;
  int32_t byte_to_id_[256];
};

absl::StatusOr<std::vector<int32_t>> GgufSpmTokenizer::Encode(std::string_view text,
                                                             bool add_bos) const {
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer input is not valid UTF-8 (first bad byte at offset ",
        CompleteUtf8Prefix(text), ")"));
  }
  std::vector<int32_t> ids;
  if (add_bos) ids.push_back(vocab_.bos_id);
  if (text.empty()) return ids;
  std::string escaped = vocab_.add_space_prefix ? std::string(kSpaceSymbol) : std::string();
  escaped += ReplaceAll(text, " ", kSpaceSymbol);
  Tokenize(escaped, &ids);
  return ids;
}

void GgufSpmTokenizer::Tokenize(const std::string& text, std::vector<int32_t>* out) const {
  struct Symbol {
    int prev, next;  // neighbours in the chain, -1 at the ends
    size_t offset, size;  // bytes of `text`; size 0 once merged away
  };
  struct Bigram {
    int left, right;
    float score;
    size_t size;  // byte size when queued; a mismatch marks a stale entry
  };
  struct Lower {  // priority: higher score first, then leftmost
    bool operator()(const Bigram& l, const Bigram& r) const {
      return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
  };

  std::vector<Symbol> symbols;
  for (size_t offset = 0; offset < text.size();) {
    const auto lead = static_cast<uint8_t>(text[offset]);
    const size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;  // input is valid
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, offset + len == text.size() ? -1 : index + 1, offset, len});
    offset += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, Lower> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[left].size + symbols[right].size;
    const int32_t id = Find(std::string_view(text).substr(symbols[left].offset, size));
    if (id < 0) return;
    const float score = vocab_.scores.empty() ? 0.0f : vocab_.scores[id];
    queue.push({left, right, score, size});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != bigram.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = std::string_view(text).substr(symbols[i].offset, symbols[i].size);
    const int32_t id = Find(piece);
    if (id >= 0) {
      out->push_back(id);
    } else {
      for (const char c : piece) out->push_back(byte_to_id_[static_cast<uint8_t>(c)]);
    }
  }
}

std::string GgufSpmTokenizer::TokenBytes(int32_t id) const {
  HR_CHECK(id >= 0 && id < vocab_size(), "token id out of range");
  const int32_t type = vocab_.types.empty() ? SpmVocab::kNormal : vocab_.types[id];
  const std::string& piece = vocab_.pieces[id];
  switch (type) {
    case SpmVocab::kByte:
      return std::string(1, static_cast<char>(ParseByteToken(piece)));
    case SpmVocab::kUserDefined:
      return piece;
    case SpmVocab::kControl:
    case SpmVocab::kUnknown:
    case SpmVocab::kUnused:
      return "";
    default:  // normal, undefined
      return ReplaceAll(piece, kSpaceSymbol, " ");
  }
}

// Reads an optional boolean metadata value (GgufFile has no GetBool).
absl::StatusOr<bool> GetBoolOr(const GgufFile& gguf, const std::string& key, bool fallback) {
  const auto it = gguf.metadata().find(key);
  if (it == gguf.metadata().end()) return fallback;
  if (const bool* b = std::get_if<bool>(&it->second.value)) return *b;
  return absl::InvalidArgumentError(absl::StrCat("metadata ", key, " is not a bool"));
}

absl::StatusOr<int32_t> GetIdOr(const GgufFile& gguf, const std::string& key, int32_t fallback) {
  if (!gguf.Has(key)) return fallback;
  const absl::StatusOr<int64_t> id = gguf.GetInt(key);
  if (!id.ok() || *id < 0 || *id > INT32_MAX) {  // checked against the vocabulary later
    return absl::InvalidArgumentError(absl::StrCat("metadata ", key, " is not a token id"));
  }
  return static_cast<int32_t>(*id);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeSpmTokenizer(SpmVocab vocab) {
  const size_t n = vocab.pieces.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer vocabulary is empty");
  if (!vocab.scores.empty() && vocab.scores.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer has ", n, " pieces but ", vocab.scores.size(), " scores"));
  }
  if (!vocab.types.empty() && vocab.types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer has ", n, " pieces but ", vocab.types.size(), " token types"));
  }
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    const int32_t type = vocab.types[i];
    if (type < SpmVocab::kUndefined || type > SpmVocab::kByte) {
      return absl::InvalidArgumentError(absl::StrCat("token ", i, " has unknown type ", type));
    }
    if (type == SpmVocab::kByte && ParseByteToken(vocab.pieces[i]) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "byte token ", i, " is \"", vocab.pieces[i], "\", not of the form <0xXX>"));
    }
  }
  const std::pair<const char*, int32_t> special[] = {
      {"BOS", vocab.bos_id}, {"EOS", vocab.eos_id}, {"unknown", vocab.unk_id}};
  for (const auto& [name, id] : special) {
    if (id < 0 || static_cast<size_t>(id) >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer ", name, " id ", id, " is outside the vocabulary of ", n));
    }
  }
  return std::unique_ptr<Tokenizer>(new GgufSpmTokenizer(std::move(vocab)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const GgufFile& gguf) {
  // GgufFile's own errors already name the file; ours get it prefixed here.
  HR_ASSIGN_OR_RETURN(const std::string model, gguf.GetString("tokenizer.ggml.model"));
  if (model != "llama") {
    return absl::UnimplementedError(absl::StrCat(
        gguf.name(), ": tokenizer model \"", model, "\" is not supported (only \"llama\")"));
  }
  SpmVocab vocab;
  HR_ASSIGN_OR_RETURN(vocab.pieces, gguf.GetStringArray("tokenizer.ggml.tokens"));
  if (gguf.Has("tokenizer.ggml.scores")) {
    HR_ASSIGN_OR_RETURN(const std::vector<double> scores,
                        gguf.GetFloatArray("tokenizer.ggml.scores"));
    vocab.scores.assign(scores.begin(), scores.end());
  }
  if (gguf.Has("tokenizer.ggml.token_type")) {
    HR_ASSIGN_OR_RETURN(const std::vector<int64_t> types,
                        gguf.GetIntArray("tokenizer.ggml.token_type"));
    for (const int64_t t : types) {  // range-checked by MakeSpmTokenizer
      vocab.types.push_back(t < INT32_MIN || t > INT32_MAX ? -1 : static_cast<int32_t>(t));
    }
  }
  absl::Status status = [&]() -> absl::Status {
    HR_ASSIGN_OR_RETURN(vocab.bos_id, GetIdOr(gguf, "tokenizer.ggml.bos_token_id", 1));
    HR_ASSIGN_OR_RETURN(vocab.eos_id, GetIdOr(gguf, "tokenizer.ggml.eos_token_id", 2));
    HR_ASSIGN_OR_RETURN(vocab.unk_id, GetIdOr(gguf, "tokenizer.ggml.unknown_token_id", 0));
    HR_ASSIGN_OR_RETURN(vocab.add_space_prefix,
                        GetBoolOr(gguf, "tokenizer.ggml.add_space_prefix", true));
    return absl::OkStatus();
  }();
  absl::StatusOr<std::unique_ptr<Tokenizer>> result =
      status.ok() ? MakeSpmTokenizer(std::move(vocab)) : status;
  if (!result.ok()) return Annotate(result.status(), gguf.name());
  return result;
}

}  // namespace hr
