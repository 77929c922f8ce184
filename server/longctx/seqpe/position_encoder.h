// The SeqPE position encoder (algorithms.md §2.2-2.3; official
// `SequentialPE.forward` with dropout off): PE(p) for an integer position p.
//
//   digits:  p in base `base`, most significant first, left-padded with digit
//            0 to `max_digits` tokens (42 -> 0 0 0 4 2); slot t = 0..D-1.
//   tokens:  digit_embd[digit_t] + slot_embd[t], then a learned CLS token
//            appended last (no slot embedding): D + 1 tokens.
//   blocks:  n_layers pre-LN GPT-2 blocks (gpt2_layers.h) whose attention is
//            causal (token t reads 0..t) or bidirectional, scaled by
//            1/sqrt(E / n_heads); with mask_padding, padding digits (the
//            leading zeros that are not the number's own digits) are never
//            attended. A padding query that may read no key outputs zeros;
//            such rows never reach the CLS token, as in the official code.
//   output:  PE(p) = out_proj(LN_final(x[CLS])) / temperature   ([out_dim]).
//
// Positions must lie in [0, base^max_digits): the digit budget. Outside it,
// Encode returns OUT_OF_RANGE (INVALID_ARGUMENT when negative) naming the
// position and the budget; nothing is wrapped or truncated.
//
// Thread-safety: immutable after construction; Encode is const and uses
// per-call scratch, so any number of threads may call it at once.
// Ownership: borrows the config and weights, which must outlive the encoder.
#ifndef HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_ENCODER_H_
#define HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_ENCODER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/longctx/seqpe/position_encoder_config.h"
#include "server/model/seqpe/gpt2_layers.h"

namespace hr {

struct PositionEncoderWeights {
  Matrix digit_embd;                     // [base, E]
  Matrix slot_embd;                      // [max_digits, E]
  Matrix cls;                            // [1, E]
  std::vector<Gpt2BlockWeights> blocks;  // n_layers, width E, MLP ffn_dim
  LayerNormWeights final_norm;           // used when config.final_layernorm
  Linear out_proj;                       // [out_dim, E] with bias
};

// The digit tokens of `position`: digits[0 .. max_digits) (most significant
// first) and the number of leading padding digits. OUT_OF_RANGE beyond the
// budget; INVALID_ARGUMENT when negative.
absl::Status PositionDigits(const PositionEncoderConfig& config, int64_t position,
                            std::span<int32_t> digits, int64_t* n_padding);

class PositionEncoder {
 public:
  PositionEncoder(const PositionEncoderConfig& config, const PositionEncoderWeights& weights);

  const PositionEncoderConfig& config() const { return config_; }

  // out[i, :] = PE(positions[i]), [positions.size(), out_dim] row-major.
  // Errors as PositionDigits (for the first bad position); out is then
  // unspecified.
  absl::Status Encode(std::span<const int64_t> positions, float* out) const;

 private:
  // Encodes positions whose digits are already checked (n <= kBatch).
  void EncodeBatch(const int32_t* digits, const int64_t* n_padding, int64_t n, float* out) const;

  const PositionEncoderConfig& config_;
  const PositionEncoderWeights& weights_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_ENCODER_H_
