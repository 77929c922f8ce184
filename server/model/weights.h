// LLaMA weights as F32 row-major matrices, plus the storage that backs them.
//
// Every matrix is [out_features, in_features] (PyTorch nn.Linear layout, which
// is also GGUF's layout with ne0 = in_features). F32 tensors point into the
// memory-mapped file; other dtypes are converted into owned buffers at load.
//
// Thread-safety: immutable after loading; shared by all workers.
#ifndef HEADROOM_SERVER_MODEL_WEIGHTS_H_
#define HEADROOM_SERVER_MODEL_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/model/config.h"

namespace hr {

// A read-only F32 matrix view ([rows, cols], row-major; vectors have rows = 1).
struct Matrix {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

struct LayerWeights {
  Matrix attn_norm;  // [1, dim]
  Matrix wq;         // [n_heads * head_dim, dim]
  Matrix wk;         // [n_kv_heads * head_dim, dim]
  Matrix wv;         // [n_kv_heads * head_dim, dim]
  Matrix wo;         // [dim, n_heads * head_dim]
  Matrix ffn_norm;   // [1, dim]
  Matrix w_gate;     // [ffn_dim, dim]
  Matrix w_up;       // [ffn_dim, dim]
  Matrix w_down;     // [dim, ffn_dim]
};

struct LlamaWeights {
  ModelConfig config;
  Matrix tok_embd;     // [vocab, dim]
  std::vector<LayerWeights> layers;
  Matrix output_norm;  // [1, dim]
  Matrix output;       // [vocab, dim] (== tok_embd when tied)

  // Keeps the mapped files and converted buffers alive.
  std::vector<std::shared_ptr<const void>> storage;

  // Owns `values` and returns a Matrix over them.
  Matrix Own(std::vector<float> values, int64_t rows, int64_t cols);
};

// Random weights (normal, std 0.02; norms = 1) for benchmarks and tests.
LlamaWeights RandomLlamaWeights(const ModelConfig& config, uint64_t seed);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_WEIGHTS_H_
