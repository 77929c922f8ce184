// Tokenizer interface and the streaming detokenizer.
//
// Implementation: the llama.cpp SPM algorithm (LLaMA SentencePiece-style BPE
// with byte fallback) over a vocabulary embedded in GGUF or read from a
// SentencePiece `tokenizer.model` (sentencepiece_model.h).
//
// Thread-safety: tokenizers are immutable after construction and may be used
// from any thread. StreamingDetokenizer is per-stream, not thread-safe.
#ifndef HEADROOM_SERVER_MODEL_TOKENIZER_H_
#define HEADROOM_SERVER_MODEL_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hr {

class GgufFile;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes UTF-8 `text` (with SentencePiece's dummy-prefix space when the
  // vocabulary asks for it); prepends BOS when `add_bos`. INVALID_ARGUMENT on
  // invalid UTF-8.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                                      bool add_bos) const = 0;

  // The bytes token `id` stands for when decoded: "▁" becomes ' ', byte
  // tokens <0xXX> become that byte, control tokens (BOS/EOS/...) are empty.
  // REQUIRES: 0 <= id < vocab_size().
  virtual std::string TokenBytes(int32_t id) const = 0;

  // The vocabulary entry as stored (e.g. "▁the", "<0x0A>", "<s>").
  virtual std::string Piece(int32_t id) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;

  // Decodes a whole sequence (as SentencePiece does: the leading space of the
  // first piece is dropped). Invalid UTF-8 byte runs become U+FFFD.
  std::string Decode(const std::vector<int32_t>& ids) const;
};

// Builds the tokenizer embedded in a GGUF file (`tokenizer.ggml.*` keys;
// model "llama"). UNIMPLEMENTED for other tokenizer models.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const GgufFile& gguf);

// A LLaMA SentencePiece-style vocabulary, as GGUF stores it (`tokenizer.ggml.*`).
struct SpmVocab {
  enum TokenType : int32_t {  // GGUF / llama.cpp token types
    kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3,
    kUserDefined = 4, kUnused = 5, kByte = 6,
  };
  std::vector<std::string> pieces;  // "▁the", "<0x0A>", "<s>", ...
  std::vector<float> scores;        // merge priority; empty means all 0
  std::vector<int32_t> types;       // TokenType per piece; empty means all normal
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t unk_id = 0;
  bool add_space_prefix = true;
};

// Builds the llama.cpp-compatible SPM tokenizer (llm_tokenizer_spm) from a
// vocabulary. INVALID_ARGUMENT when sizes disagree, ids are out of range, a
// type is unknown or a byte token is not of the form <0xXX>.
absl::StatusOr<std::unique_ptr<Tokenizer>> MakeSpmTokenizer(SpmVocab vocab);

// Loads a SentencePiece `tokenizer.model` (BPE; see sentencepiece_model.h)
// into the same SPM tokenizer: identical ids to the SentencePiece library
// (tests/tokenizer/sentencepiece_tokenizer_test).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(const std::string& path);

// INVALID_ARGUMENT (naming `file`) when the ids of `tokenizer` (may be null:
// OK) do not all index an embedding table of `vocab_size` rows.
absl::Status CheckTokenizerFits(const Tokenizer* tokenizer, int64_t vocab_size,
                                const std::string& file);

// Turns a stream of token ids into UTF-8 text pieces. A character whose bytes
// are split across tokens is held back until complete, so every returned
// piece is valid UTF-8; bytes that can never form a character become U+FFFD.
// The first emitted piece loses its leading space (SentencePiece convention).
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // Returns the text that became complete with `id` (possibly empty).
  std::string Push(int32_t id);
  // Returns whatever is still held back (incomplete bytes become U+FFFD).
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence
  bool at_start_ = true;
};

// Length of the longest prefix of `bytes` made of complete, valid UTF-8
// characters, treating a trailing incomplete (but so far valid) sequence as
// not yet complete. Exposed for tests.
size_t CompleteUtf8Prefix(std::string_view bytes);
bool IsValidUtf8(std::string_view text);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_TOKENIZER_H_
