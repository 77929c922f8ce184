#include "server/model/weights.h"

#include "server/common/splitmix64.h"

#include <cmath>
#include <utility>

#include "server/common/status.h"

namespace hr {

Matrix LlamaWeights::Own(std::vector<float> values, int64_t rows, int64_t cols) {
  HR_CHECK(rows >= 0 && cols >= 0 && static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) ==
                                         values.size(),
           "LlamaWeights::Own: size does not match rows x cols");
  auto owned = std::make_shared<const std::vector<float>>(std::move(values));
  Matrix m{owned->data(), rows, cols};
  storage.push_back(std::move(owned));
  return m;
}

namespace {

// Approximately normal(0, stddev): the sum of four uniforms in [-1, 1) has
// variance 4/3, so scale by stddev * sqrt(3/4). Each uniform takes 16 bits of
// one 64-bit draw. Cheap and deterministic across platforms.
std::vector<float> RandomNormal(SplitMix64& rng, size_t n, float stddev) {
  std::vector<float> out(n);
  const float scale = stddev * std::sqrt(0.75f) / 32768.0f;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = rng.Next();
    int32_t sum = 0;
    for (int k = 0; k < 4; ++k) {
      sum += static_cast<int32_t>((r >> (16 * k)) & 0xFFFFu) - 32768;
    }
    out[i] = static_cast<float>(sum) * scale;
  }
  return out;
}

}  // namespace

LlamaWeights RandomLlamaWeights(const ModelConfig& config, uint64_t seed) {
  LlamaWeights w;
  w.config = config;
  SplitMix64 rng{seed};
  const float kStd = 0.02f;
  auto random = [&](int64_t rows, int64_t cols) {
    return w.Own(RandomNormal(rng, static_cast<size_t>(rows * cols), kStd), rows, cols);
  };
  auto ones = [&](int64_t n) { return w.Own(std::vector<float>(static_cast<size_t>(n), 1.0f), 1, n); };
  const int64_t q_dim = config.n_heads * config.head_dim;
  const int64_t kv_dim = config.n_kv_heads * config.head_dim;
  w.tok_embd = random(config.vocab_size, config.dim);
  w.layers.resize(static_cast<size_t>(config.n_layers));
  for (LayerWeights& l : w.layers) {
    l.attn_norm = ones(config.dim);
    l.wq = random(q_dim, config.dim);
    l.wk = random(kv_dim, config.dim);
    l.wv = random(kv_dim, config.dim);
    l.wo = random(config.dim, q_dim);
    l.ffn_norm = ones(config.dim);
    l.w_gate = random(config.ffn_dim, config.dim);
    l.w_up = random(config.ffn_dim, config.dim);
    l.w_down = random(config.dim, config.ffn_dim);
  }
  w.output_norm = ones(config.dim);
  w.output = config.tied_embeddings ? w.tok_embd : random(config.vocab_size, config.dim);
  return w;
}

}  // namespace hr
