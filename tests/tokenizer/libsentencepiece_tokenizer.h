// Test-only: the SentencePiece library's own tokenizer behind hr::Tokenizer,
// the reference for the server's tokenizer.model reader. Link only into test
// binaries that do not also link libprotobuf (see the .cc).
#ifndef HEADROOM_TESTS_TOKENIZER_LIBSENTENCEPIECE_TOKENIZER_H_
#define HEADROOM_TESTS_TOKENIZER_LIBSENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/model/tokenizer.h"

namespace hr {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLibSentencePieceTokenizer(const std::string& path);

}  // namespace hr

#endif  // HEADROOM_TESTS_TOKENIZER_LIBSENTENCEPIECE_TOKENIZER_H_
