// Loads a model from a GGUF file or a Hugging Face model directory.
//
// GGUF (`*.gguf`): architecture `llama`; tensors token_embd, blk.N.attn_{norm,
//   q,k,v,output}, blk.N.ffn_{norm,gate,up,down}, output_norm, output (absent:
//   tied to token_embd). RoPE style: adjacent pairs. Tokenizer: embedded.
// HF directory: config.json (LlamaForCausalLM), model.safetensors or
//   model.safetensors.index.json with shards; RoPE style: NeoX halves.
//   Tokenizer: tokenizer.model (SentencePiece) when present.
//
// Errors name the file and the tensor or byte offset: NOT_FOUND (missing file
// or tensor), INVALID_ARGUMENT (corrupt or wrong shape), UNIMPLEMENTED
// (unsupported dtype or architecture).
#ifndef HEADROOM_SERVER_MODEL_LOADER_H_
#define HEADROOM_SERVER_MODEL_LOADER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/model/tokenizer.h"
#include "server/model/weights.h"

namespace hr {

struct LoadedModel {
  LlamaWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the model ships none
};

absl::StatusOr<LoadedModel> LoadModel(const std::string& path);
absl::StatusOr<LoadedModel> LoadGgufModel(const std::string& path);
absl::StatusOr<LoadedModel> LoadHfModel(const std::string& directory);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_LOADER_H_
