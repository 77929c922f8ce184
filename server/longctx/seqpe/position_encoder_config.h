// Hyper-parameters of the SeqPE position encoder (Li et al., 2025;
// docs/reference/algorithms.md §2.2-2.3), as the project's model config
// (config.json "seqpe" object, server/model/seqpe/seqpe_config.h) states them.
#ifndef HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_ENCODER_CONFIG_H_
#define HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_ENCODER_CONFIG_H_

#include <cstdint>

#include "absl/status/status.h"

namespace hr {

struct PositionEncoderConfig {
  int64_t base = 10;            // digit alphabet; the official code is decimal
  int64_t max_digits = 5;       // digits per position, left-padded with digit 0
  int64_t embed_dim = 0;        // E: width of the encoder's tokens
  int64_t n_heads = 0;          // encoder attention heads (E % n_heads == 0)
  int64_t n_layers = 0;         // pre-LN GPT-2 blocks
  int64_t ffn_dim = 0;          // encoder MLP width (4·E in the official code)
  bool causal = true;           // "causal" (default) or "bi" attention between digit tokens
  bool mask_padding = false;    // padding digits are not attended (official default: false)
  bool final_layernorm = true;  // LayerNorm before out_proj (--seqpe_last_layernorm)
  float layer_norm_eps = 1e-5f;
  int64_t out_dim = 0;       // P: width of PE(p) (out_proj rows)
  float temperature = 1.0f;  // PE(p) = out_proj(CLS) / temperature

  // Number of representable positions, base^max_digits (positions
  // 0 .. budget-1); saturates at INT64_MAX.
  int64_t PositionBudget() const;

  // INVALID_ARGUMENT naming the first inconsistent field.
  absl::Status Validate() const;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_ENCODER_CONFIG_H_
