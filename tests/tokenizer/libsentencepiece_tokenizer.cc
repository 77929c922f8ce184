// Test-only: a Tokenizer over a SentencePiece `tokenizer.model` via the
// SentencePiece library itself, the reference the server's own reader
// (server/model/sentencepiece_model.h) is checked against. Kept out of the
// server: Debian's libsentencepiece exports its own copy of protobuf, which
// clashes with the libprotobuf gRPC uses in the same process. Encoding is the library's own (EncodeAsIds); TokenBytes follows the
// same conventions as the GGUF tokenizer: "▁" -> ' ', byte pieces <0xXX> ->
// the byte, control / unknown / unused pieces -> "".
//
// Toolchain note: sentencepiece_processor.h declares
// `namespace absl { using std::string_view; }`, which collides with Debian's
// Abseil (its absl::string_view is a distinct class). The header is therefore
// included first with `absl` renamed by a macro; its functions take
// std::string_view either way, so names and ABI are unchanged.
#define absl hr_sentencepiece_absl
#include <sentencepiece_processor.h>
#undef absl

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/common/status.h"
#include "server/model/tokenizer.h"
#include "tests/tokenizer/libsentencepiece_tokenizer.h"

namespace hr {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

absl::Status FromSentencePiece(const sentencepiece::util::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // SentencePiece's status codes are numbered like absl's.
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.error_message());
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
      : sp_(std::move(sp)) {}

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_bos) const override {
    if (!IsValidUtf8(text)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer input is not valid UTF-8 (first bad byte at offset ",
          CompleteUtf8Prefix(text), ")"));
    }
    std::vector<int32_t> ids;
    if (add_bos) {
      if (sp_->bos_id() < 0) return absl::FailedPreconditionError("tokenizer has no BOS token");
      ids.push_back(sp_->bos_id());
    }
    std::vector<int> pieces;
    HR_RETURN_IF_ERROR(FromSentencePiece(sp_->Encode(text, &pieces)));
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    return ids;
  }

  std::string TokenBytes(int32_t id) const override {
    HR_CHECK(id >= 0 && id < vocab_size(), "token id out of range");
    if (sp_->IsControl(id) || sp_->IsUnknown(id) || sp_->IsUnused(id)) return "";
    const std::string piece = sp_->IdToPiece(id);
    if (sp_->IsByte(id)) {  // "<0xAB>"
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    }
    std::string out;
    for (size_t pos = 0; pos < piece.size();) {
      if (piece.compare(pos, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
        out += ' ';
        pos += kSpaceSymbol.size();
      } else {
        out += piece[pos++];
      }
    }
    return out;
  }

  std::string Piece(int32_t id) const override {
    HR_CHECK(id >= 0 && id < vocab_size(), "token id out of range");
    return sp_->IdToPiece(id);
  }
  int32_t vocab_size() const override { return sp_->GetPieceSize(); }
  int32_t bos_id() const override { return sp_->bos_id(); }
  int32_t eos_id() const override { return sp_->eos_id(); }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLibSentencePieceTokenizer(const std::string& path) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const absl::Status status = FromSentencePiece(sp->Load(path));
  if (!status.ok()) return Annotate(status, path);
  return std::unique_ptr<Tokenizer>(new SentencePieceTokenizer(std::move(sp)));
}

}  // namespace hr
