// Architecture hyper-parameters of a LLaMA-family model.
#ifndef HEADROOM_SERVER_MODEL_CONFIG_H_
#define HEADROOM_SERVER_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "kernels/rope_style.h"

namespace hr {

struct ModelConfig {
  std::string architecture = "llama";
  int64_t dim = 0;             // hidden size
  int64_t n_layers = 0;
  int64_t n_heads = 0;         // query heads
  int64_t n_kv_heads = 0;      // key/value heads (GQA when < n_heads)
  int64_t head_dim = 0;        // dim / n_heads
  int64_t ffn_dim = 0;         // SwiGLU hidden size
  int64_t vocab_size = 0;
  int64_t trained_context = 0; // as declared by the file (tokens)
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  float rope_linear_scale = 1.0f;  // positions are divided by this factor
  RopeStyle rope_style = RopeStyle::kAdjacent;
  bool tied_embeddings = false;    // output head shares token_embd

  // INVALID_ARGUMENT naming the first inconsistent field.
  absl::Status Validate() const;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_CONFIG_H_
