// Reads a SentencePiece `tokenizer.model` (a serialized
// sentencepiece.ModelProto) into the SPM vocabulary the server's tokenizer
// runs on (MakeSpmTokenizer, the llama.cpp algorithm), so a Hugging Face
// LLaMA directory tokenizes exactly as its GGUF conversion does.
//
// Only BPE models are accepted (LLaMA's; SentencePiece's unigram models
// segment by Viterbi over piece scores, a different algorithm):
// UNIMPLEMENTED otherwise. Fields read (sentencepiece_model.proto numbers):
//   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece   1 piece, 2 score (float), 3 type (NORMAL 1, UNKNOWN 2,
//                   CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6: the GGUF numbers)
//   TrainerSpec     3 model_type (UNIGRAM 1 default, BPE 2), 40 unk_id (0),
//                   41 bos_id (1), 42 eos_id (2)
//   NormalizerSpec  3 add_dummy_prefix (true)
// Everything else is skipped.
//
// Why not the protobuf library: Debian's libsentencepiece.so exports its own
// protobuf copy, and the reference test loads it beside this reader; the
// wire format needed here (varints, 32-bit floats, length-delimited fields)
// is small enough to read directly.
//
// Thread-safety: pure functions.
#ifndef HEADROOM_SERVER_MODEL_SENTENCEPIECE_MODEL_H_
#define HEADROOM_SERVER_MODEL_SENTENCEPIECE_MODEL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/model/tokenizer.h"

namespace hr {

// INVALID_ARGUMENT for a malformed message, UNIMPLEMENTED for non-BPE models.
absl::StatusOr<SpmVocab> ParseSentencePieceModel(std::string_view bytes);

// Reads and parses the file; errors name it.
absl::StatusOr<SpmVocab> ReadSentencePieceModel(const std::string& path);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SENTENCEPIECE_MODEL_H_
