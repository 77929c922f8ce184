// Weights of a GPT-2-style SeqPE model (seqpe_config.h) as F32 row-major
// views, plus the storage that backs them.
//
// Thread-safety: immutable after loading; shared by all workers.
// Ownership: `storage` keeps the mapped file and converted buffers alive;
// the views stay valid when the struct is moved.
#ifndef HEADROOM_SERVER_MODEL_SEQPE_SEQPE_WEIGHTS_H_
#define HEADROOM_SERVER_MODEL_SEQPE_SEQPE_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/longctx/seqpe/position_encoder.h"
#include "server/model/seqpe/gpt2_layers.h"
#include "server/model/seqpe/seqpe_config.h"

namespace hr {

struct SeqPeWeights {
  SeqPeConfig config;
  Matrix tok_embd;                       // [vocab, dim]
  std::vector<Gpt2BlockWeights> blocks;  // n_layers
  LayerNormWeights output_norm;          // [dim]
  Matrix output;                         // [vocab, dim] (== tok_embd when tied)
  Linear pe_qk;                          // [2P, P]: attn_scalar with qk_proj single only
  PositionEncoderWeights encoder;

  std::vector<std::shared_ptr<const void>> storage;

  // Owns `values` and returns a Matrix over them.
  Matrix Own(std::vector<float> values, int64_t rows, int64_t cols);
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQPE_SEQPE_WEIGHTS_H_
