#include "bench/bench_model.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, dim, 768, "hidden size");
ABSL_FLAG(int64_t, layers, 12, "layers");
ABSL_FLAG(int64_t, heads, 12, "query heads");
ABSL_FLAG(int64_t, kv_heads, 12, "key/value heads");
ABSL_FLAG(int64_t, ffn, 2048, "SwiGLU hidden size");
ABSL_FLAG(int64_t, vocab, 32000, "vocabulary");

namespace hr::bench {

absl::StatusOr<ModelConfig> BenchModelConfig() {
  ModelConfig c;
  c.dim = absl::GetFlag(FLAGS_dim);
  c.n_layers = absl::GetFlag(FLAGS_layers);
  c.n_heads = absl::GetFlag(FLAGS_heads);
  c.n_kv_heads = absl::GetFlag(FLAGS_kv_heads);
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  c.ffn_dim = absl::GetFlag(FLAGS_ffn);
  c.vocab_size = absl::GetFlag(FLAGS_vocab);
  c.trained_context = 4096;
  absl::Status st = c.Validate();
  if (!st.ok()) return st;
  return c;
}

}  // namespace hr::bench
