#include "server/model/sentencepiece_model.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/common/mapped_file.h"
#include "server/common/status.h"

namespace hr {
namespace {

// Protobuf wire types.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// A cursor over one serialized message.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  bool done() const { return p_ == end_; }

  absl::StatusOr<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return absl::InvalidArgumentError("truncated varint");
      const uint8_t b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return absl::InvalidArgumentError("varint longer than 10 bytes");
  }
  // Reads a field key: field number and wire type.
  absl::Status Key(uint32_t* field, WireType* type) {
    HR_ASSIGN_OR_RETURN(uint64_t key, Varint());
    *field = static_cast<uint32_t>(key >> 3);
    *type = static_cast<WireType>(key & 7);
    if (*field == 0) return absl::InvalidArgumentError("field number 0");
    return absl::OkStatus();
  }
  absl::StatusOr<std::string_view> Bytes() {
    HR_ASSIGN_OR_RETURN(uint64_t n, Varint());
    if (n > static_cast<uint64_t>(end_ - p_)) return absl::InvalidArgumentError("field past the end");
    std::string_view out(p_, n);
    p_ += n;
    return out;
  }
  absl::StatusOr<float> Float() {
    if (end_ - p_ < 4) return absl::InvalidArgumentError("truncated float");
    float f;
    std::memcpy(&f, p_, 4);  // little-endian, as x86-64 and the wire format
    p_ += 4;
    return f;
  }
  absl::Status Skip(WireType type) {
    switch (type) {
      case kVarint: return Varint().status();
      case kFixed64: return Advance(8);
      case kLengthDelimited: return Bytes().status();
      case kFixed32: return Advance(4);
    }
    return absl::InvalidArgumentError(absl::StrCat("unsupported wire type ", static_cast<int>(type)));
  }

 private:
  absl::Status Advance(int64_t n) {
    if (end_ - p_ < n) return absl::InvalidArgumentError("truncated fixed-size field");
    p_ += n;
    return absl::OkStatus();
  }
  const char* p_;
  const char* end_;
};

absl::Status Expect(WireType got, WireType want, std::string_view field) {
  if (got == want) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(std::string(field), " has wire type ",
                                                 static_cast<int>(got)));
}

absl::Status ParsePiece(std::string_view bytes, SpmVocab* vocab) {
  WireReader r(bytes);
  std::string piece;
  float score = 0.0f;
  int32_t type = SpmVocab::kNormal;
  while (!r.done()) {
    uint32_t field;
    WireType wt;
    HR_RETURN_IF_ERROR(r.Key(&field, &wt));
    if (field == 1) {
      HR_RETURN_IF_ERROR(Expect(wt, kLengthDelimited, "SentencePiece.piece"));
      HR_ASSIGN_OR_RETURN(std::string_view p, r.Bytes());
      piece = std::string(p);
    } else if (field == 2) {
      HR_RETURN_IF_ERROR(Expect(wt, kFixed32, "SentencePiece.score"));
      HR_ASSIGN_OR_RETURN(score, r.Float());
    } else if (field == 3) {
      HR_RETURN_IF_ERROR(Expect(wt, kVarint, "SentencePiece.type"));
      HR_ASSIGN_OR_RETURN(uint64_t t, r.Varint());
      type = static_cast<int32_t>(t);
    } else {
      HR_RETURN_IF_ERROR(r.Skip(wt));
    }
  }
  vocab->pieces.push_back(std::move(piece));
  vocab->scores.push_back(score);
  vocab->types.push_back(type);
  return absl::OkStatus();
}

absl::Status ParseTrainerSpec(std::string_view bytes, SpmVocab* vocab, int64_t* model_type) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field;
    WireType wt;
    HR_RETURN_IF_ERROR(r.Key(&field, &wt));
    if (wt == kVarint && (field == 3 || field == 40 || field == 41 || field == 42)) {
      HR_ASSIGN_OR_RETURN(uint64_t v, r.Varint());
      const auto value = static_cast<int32_t>(static_cast<int64_t>(v));  // int32 fields may be negative
      if (field == 3) *model_type = value;
      if (field == 40) vocab->unk_id = value;
      if (field == 41) vocab->bos_id = value;
      if (field == 42) vocab->eos_id = value;
    } else {
      HR_RETURN_IF_ERROR(r.Skip(wt));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseNormalizerSpec(std::string_view bytes, SpmVocab* vocab) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field;
    WireType wt;
    HR_RETURN_IF_ERROR(r.Key(&field, &wt));
    if (field == 3 && wt == kVarint) {
      HR_ASSIGN_OR_RETURN(uint64_t v, r.Varint());
      vocab->add_space_prefix = v != 0;
    } else {
      HR_RETURN_IF_ERROR(r.Skip(wt));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SpmVocab> ParseSentencePieceModel(std::string_view bytes) {
  SpmVocab vocab;  // defaults: unk 0, bos 1, eos 2, dummy prefix on
  int64_t model_type = 1;  // TrainerSpec's default: UNIGRAM
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field;
    WireType wt;
    HR_RETURN_IF_ERROR(r.Key(&field, &wt));
    if (wt == kLengthDelimited && (field == 1 || field == 2 || field == 3)) {
      HR_ASSIGN_OR_RETURN(std::string_view sub, r.Bytes());
      if (field == 1) HR_RETURN_IF_ERROR(ParsePiece(sub, &vocab));
      if (field == 2) HR_RETURN_IF_ERROR(ParseTrainerSpec(sub, &vocab, &model_type));
      if (field == 3) HR_RETURN_IF_ERROR(ParseNormalizerSpec(sub, &vocab));
    } else {
      HR_RETURN_IF_ERROR(r.Skip(wt));
    }
  }
  if (vocab.pieces.empty()) return absl::InvalidArgumentError("no pieces: not a SentencePiece model");
  if (model_type != 2) {
    return absl::UnimplementedError(absl::StrCat(
        "SentencePiece model type ", model_type, " (only BPE, type 2, as LLaMA's, is supported)"));
  }
  return vocab;
}

absl::StatusOr<SpmVocab> ReadSentencePieceModel(const std::string& path) {
  absl::StatusOr<MappedFile> file = MappedFile::Open(path);
  if (!file.ok()) return Annotate(file.status(), path);
  absl::StatusOr<SpmVocab> vocab = ParseSentencePieceModel(
      std::string_view(reinterpret_cast<const char*>(file->data()), file->size_bytes()));
  if (!vocab.ok()) return Annotate(vocab.status(), path);
  return vocab;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(const std::string& path) {
  HR_ASSIGN_OR_RETURN(SpmVocab vocab, ReadSentencePieceModel(path));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = MakeSpmTokenizer(std::move(vocab));
  if (!tokenizer.ok()) return Annotate(tokenizer.status(), path);
  return tokenizer;
}

}  // namespace hr
