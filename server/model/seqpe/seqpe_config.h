// Architecture of a GPT-2-style decoder with SeqPE positions, and its
// config.json (the project's format; tools/seqpe/convert_checkpoint.py
// writes it from an official SeqPE checkpoint).
//
// config.json (every key required unless a default is given):
//   {
//     "architecture": "gpt2_seqpe",
//     "vocab_size": 50257, "dim": 768, "n_layers": 12, "n_heads": 12,
//     "ffn_dim": 3072,                 // MLP width (GPT-2: 4·dim)
//     "layer_norm_eps": 1e-5,          // default 1e-5
//     "activation": "gelu_tanh",       // default; the only one (GPT-2 gelu_new)
//     "trained_context": 512,          // default 0 (unknown); informational
//     "tied_embeddings": true,         // default true: no "output.weight"
//     "seqpe": {
//       "apply": "attn_scalar",        // or "input_add"
//       "qk_proj": "single",           // attn_scalar: "single" (shared pe_qk) or "none"
//       "multi_head": true,            // attn_scalar: pq, pk split per head
//       "scalar_scale": 1.0,           // s, default 1
//       "encoder": {
//         "base": 10, "max_digits": 5, // default base 10
//         "embed_dim": 768, "n_heads": 12, "n_layers": 2, "ffn_dim": 3072,
//         "attn_direction": "causal",  // or "bi"; default causal
//         "mask_padding": false,       // default false
//         "final_layernorm": true,     // default true
//         "layer_norm_eps": 1e-5,      // default 1e-5
//         "out_dim": 768,              // P
//         "temperature": 1.0           // default 1
//       }
//     }
//   }
//
// How positions enter (algorithms.md §2.4; official modeling_gpt2.py):
//   input_add:   h0(p) = tok_embd[token] + PE(p)          (REQUIRES P == dim)
//   attn_scalar: r(p) = pe_qk(PE(p)) = [pq(p) | pk(p)]    (qk_proj single,
//                pe_qk: [2P, P]) or pq(p) = pk(p) = PE(p) (qk_proj none,
//                REQUIRES P == dim); with multi_head, head h uses the slice
//                [h·P/H, (h+1)·P/H) of pq and pk, otherwise every head uses
//                all of them; in every layer
//                logit[h, i, j] = (q_h(i)·k_h(j) + s·pq_h(i)·pk_h(j)) / sqrt(head_dim).
#ifndef HEADROOM_SERVER_MODEL_SEQPE_SEQPE_CONFIG_H_
#define HEADROOM_SERVER_MODEL_SEQPE_SEQPE_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/longctx/seqpe/position_encoder_config.h"

namespace hr {

enum class PeApply { kAttnScalar, kInputAdd };
enum class PeQkProj { kSingle, kNone };

struct SeqPeConfig {
  int64_t vocab_size = 0;
  int64_t dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t head_dim = 0;  // dim / n_heads (derived)
  int64_t ffn_dim = 0;
  float layer_norm_eps = 1e-5f;
  int64_t trained_context = 0;
  bool tied_embeddings = true;

  PeApply apply = PeApply::kAttnScalar;
  PeQkProj qk_proj = PeQkProj::kSingle;
  bool multi_head = true;
  float scalar_scale = 1.0f;
  PositionEncoderConfig encoder;

  // attn_scalar: heads with their own bias (n_heads, or 1 without multi_head)
  // and the width of one head's pq / pk slice.
  int64_t bias_heads() const { return multi_head ? n_heads : 1; }
  int64_t bias_head_dim() const { return encoder.out_dim / bias_heads(); }
  // Offsets of pq and pk inside a position-table row (position_table.h).
  int64_t pq_offset() const { return 0; }
  int64_t pk_offset() const { return qk_proj == PeQkProj::kSingle ? encoder.out_dim : 0; }

  // INVALID_ARGUMENT naming the first inconsistent field.
  absl::Status Validate() const;
};

// Parses and validates config.json (`path` names the file in errors).
absl::StatusOr<SeqPeConfig> ParseSeqPeConfig(const nlohmann::json& j, const std::string& path);

// The config.json text of `config` (inverse of ParseSeqPeConfig).
nlohmann::json SeqPeConfigToJson(const SeqPeConfig& config);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQPE_SEQPE_CONFIG_H_
