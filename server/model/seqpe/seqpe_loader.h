// Loads a SeqPE model directory in the project's format:
//   config.json        seqpe_config.h
//   model.safetensors  F32, F16 or BF16 tensors (converted to F32 at load)
//
// Tensors (matrices [out, in], as nn.Linear; N = layer index):
//   tok_embd.weight                 [vocab, dim]
//   blk.N.attn_norm.{weight,bias}   [dim]
//   blk.N.attn_qkv.weight           [3·dim, dim]   rows: q, k, v
//   blk.N.attn_qkv.bias             [3·dim]
//   blk.N.attn_out.{weight,bias}    [dim, dim], [dim]
//   blk.N.ffn_norm.{weight,bias}    [dim]
//   blk.N.ffn_up.{weight,bias}      [ffn_dim, dim], [ffn_dim]
//   blk.N.ffn_down.{weight,bias}    [dim, ffn_dim], [dim]
//   output_norm.{weight,bias}       [dim]
//   output.weight                   [vocab, dim]   only when not tied_embeddings
//   seqpe.pe_qk.{weight,bias}       [2P, P], [2P]  only attn_scalar + qk_proj single
//   seqpe.digit_embd.weight         [base, E]
//   seqpe.slot_embd.weight          [max_digits, E]
//   seqpe.cls                       [E]
//   seqpe.blk.N.*                   as blk.N.*, width E, MLP encoder.ffn_dim
//   seqpe.output_norm.{weight,bias} [E]            only with final_layernorm
//   seqpe.out_proj.{weight,bias}    [P, E], [P]
//
// Errors name the file and the tensor: NOT_FOUND (missing file or tensor),
// INVALID_ARGUMENT (bad config, wrong shape, a tensor the config does not
// use), UNIMPLEMENTED (dtype, architecture or option not supported).
#ifndef HEADROOM_SERVER_MODEL_SEQPE_SEQPE_LOADER_H_
#define HEADROOM_SERVER_MODEL_SEQPE_SEQPE_LOADER_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/model/seqpe/seqpe_weights.h"

namespace hr {

absl::StatusOr<SeqPeWeights> LoadSeqPeModel(const std::string& directory);

// True when `directory` has a config.json whose "architecture" is
// "gpt2_seqpe" (lets a caller dispatch between model families).
bool IsSeqPeModelDir(const std::string& directory);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQPE_SEQPE_LOADER_H_
