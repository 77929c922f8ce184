// Prefill and decode throughput of a randomly initialised ~100M-parameter
// LLaMA (F32) at batch 1 and batch 8, reported against this machine's read
// bandwidth and SGEMM rate measured in the same run.
//
//   build/bench/forward_bench [--dim 768 --layers 12 ...] > bench/results/forward_cpu.md
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/bench_model.h"
#include "bench/machine_limits.h"
#include "kernels/cpu/gemm_small_m.h"
#include "kernels/cpu/parallel.h"
#include "server/model/llama_model.h"
#include "server/model/weights.h"

ABSL_FLAG(int64_t, prefill_tokens, 512, "prompt tokens per sequence");
ABSL_FLAG(int64_t, decode_steps, 32, "decode steps timed");
ABSL_FLAG(int32_t, repeats, 3, "best-of repeats for every measurement");

namespace hr {
namespace {

using bench::NowSeconds;

struct Result {
  double prefill_tok_s;
  double decode_tok_s;      // tokens per second summed over the batch
  double decode_step_s;     // seconds per decode step
  double decode_bytes;      // bytes each decode step must read
};

// Runs `batch` sequences: one batched prefill of prefill_tokens each, then
// decode_steps batched decode steps. Best of `repeats`.
Result Run(LlamaModel& model, int batch, int64_t prefill_tokens, int64_t steps, int repeats,
           double weight_bytes) {
  const ModelConfig& c = model.config();
  Result best{0, 0, 1e30, 0};
  for (int r = 0; r < repeats; ++r) {
    std::vector<std::unique_ptr<SequenceAttention>> seqs;
    std::vector<std::vector<int32_t>> prompts(batch), next(batch, std::vector<int32_t>(1));
    std::vector<BatchEntry> entries;
    for (int b = 0; b < batch; ++b) {
      seqs.push_back(model.NewSequence(prefill_tokens + steps + 1));
      for (int64_t i = 0; i < prefill_tokens; ++i) prompts[b].push_back((i * 7919 + b * 31) % c.vocab_size);
      entries.push_back({seqs[b].get(), prompts[b], false});
    }
    std::vector<float> logits;
    double t0 = NowSeconds();
    if (!model.Forward(entries, &logits).ok()) std::abort();
    const double prefill = NowSeconds() - t0;
    for (int b = 0; b < batch; ++b) entries[b].tokens = next[b];
    t0 = NowSeconds();
    for (int64_t s = 0; s < steps; ++s) {
      for (int b = 0; b < batch; ++b) next[b][0] = (s * 13 + b) % c.vocab_size;
      if (!model.Forward(entries, &logits).ok()) std::abort();
    }
    const double step = (NowSeconds() - t0) / steps;
    best.prefill_tok_s = std::max(best.prefill_tok_s, batch * prefill_tokens / prefill);
    best.decode_step_s = std::min(best.decode_step_s, step);
  }
  best.decode_tok_s = batch / best.decode_step_s;
  // Bytes per step: every weight once (embedding: only the rows used), plus
  // each sequence's K and V for every layer at the mean context length.
  const double ctx = prefill_tokens + steps / 2.0;
  const double kv_bytes = 2.0 * c.n_layers * ctx * c.n_kv_heads * c.head_dim * sizeof(float) * batch;
  best.decode_bytes = weight_bytes + kv_bytes;
  return best;
}

}  // namespace
}  // namespace hr

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace hr;
  absl::StatusOr<ModelConfig> config = bench::BenchModelConfig();
  if (!config.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  const ModelConfig& c = *config;
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const int64_t prefill = absl::GetFlag(FLAGS_prefill_tokens);
  const int64_t steps = absl::GetFlag(FLAGS_decode_steps);

  const double gemm = bench::MeasureGemmFlops(512, 3072, 768, repeats + 2);
  LlamaWeights weights = RandomLlamaWeights(c, 1);
  const double layer_params = c.n_layers * (c.dim * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim +
                                            c.n_heads * c.head_dim * c.dim + 3.0 * c.dim * c.ffn_dim + 2.0 * c.dim);
  const double params = layer_params + 2.0 * c.vocab_size * c.dim + c.dim;
  const double read_params = layer_params + c.vocab_size * c.dim + c.dim;  // one embedding row
  const double weight_bytes = read_params * sizeof(float);
  const double flops_per_token = 2.0 * read_params;  // matmuls; attention is extra
  LlamaModel model(weights);
  // Bandwidth over a buffer as large as the weights a decode step reads (the
  // limit for this workload), and over 1 GiB (beyond any cache).
  const double bw = bench::MeasureReadBandwidth(static_cast<size_t>(weight_bytes), repeats + 2);
  const double bw_1g = bench::MeasureReadBandwidth(size_t{1} << 30, repeats + 2);

  std::printf("# Forward pass throughput (CPU, F32)\n\n");
  std::printf("- CPU: %s; threads used: %d\n", bench::CpuDescription().c_str(), cpu::NumThreads());
  std::printf("- Model: random LLaMA, dim %ld, %ld layers, %ld heads (%ld KV), ffn %ld, vocab %ld: "
              "%.1f M parameters (%.0f MB F32)\n",
              c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn_dim, c.vocab_size, params / 1e6,
              params * 4 / 1e6);
  std::printf("- Measured in this run: read bandwidth %.2f GB/s over %.0f MB (the weights' size; "
              "%.2f GB/s over 1 GiB), all threads; SGEMM %.1f GFLOP/s (512x768 · 768x3072, "
              "OpenBLAS); small-m GEMM variant: %s\n",
              bw / 1e9, weight_bytes / 1e6, bw_1g / 1e9, gemm / 1e9, cpu::SmallMVariant());
  std::printf("- Prefill: %ld tokens per sequence; decode: %ld steps after the prefill; best of %d\n\n",
              prefill, steps, repeats);
  std::printf("| batch | prefill tok/s | prefill GFLOP/s | of SGEMM | decode tok/s | ms/step | "
              "decode GB/s | of bandwidth |\n|---|---|---|---|---|---|---|---|\n");
  for (int batch : {1, 8}) {
    const Result r = Run(model, batch, prefill, steps, repeats, weight_bytes);
    const double pf = r.prefill_tok_s * flops_per_token;
    const double dbw = r.decode_bytes / r.decode_step_s;
    std::printf("| %d | %.0f | %.1f | %.0f%% | %.1f | %.1f | %.2f | %.0f%% |\n", batch,
                r.prefill_tok_s, pf / 1e9, 100 * pf / gemm, r.decode_tok_s,
                1e3 * r.decode_step_s, dbw / 1e9, 100 * dbw / bw);
    std::fflush(stdout);
  }
  std::printf("\nDecode bytes per step = all weights read once (one embedding row) + the "
              "batch's K/V at the mean context. Prefill FLOPs = 2 x parameters read per token "
              "(attention FLOPs not counted).\n");
  return 0;
}
