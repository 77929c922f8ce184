// Micro-benchmarks of the CPU kernels (Google Benchmark).
//   build/bench/kernels_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/argmax.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_small_m.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/slot_attention.h"

namespace hr::cpu {
namespace {

void BM_MatMulWt(benchmark::State& state) {
  const int m = state.range(0), k = 768, n = state.range(1);
  std::vector<float> x(m * k, 0.5f), w(n * k, 0.25f), y(m * n);
  for (auto _ : state) MatMulWt(x.data(), m, k, w.data(), n, y.data());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["GB/s(weights)"] = benchmark::Counter(4.0 * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_MatMulWt)->Args({1, 3072})->Args({8, 3072})->Args({64, 3072})->Args({512, 3072})->Args({1, 32000})->Args({8, 32000})->Args({1, 200000})->Args({8, 200000})->UseRealTime();

// Greedy sampling's argmax over a vocabulary of logits (range(0)); range(1):
// 0 std::max_element (the reference), 1 ArgMax.
void BM_ArgMax(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> x(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (float& v : x) v = normal(rng);
  int64_t sink = 0;
  for (auto _ : state) {
    sink += state.range(1) == 0 ? std::max_element(x.begin(), x.end()) - x.begin() : ArgMax(x.data(), n);
    benchmark::DoNotOptimize(sink);
  }
  state.counters["GB/s"] = benchmark::Counter(4.0 * n, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
BENCHMARK(BM_ArgMax)->Args({32000, 0})->Args({32000, 1})->Args({128256, 0})->Args({128256, 1})->UseRealTime();

void BM_RmsNorm(benchmark::State& state) {
  const int rows = state.range(0), dim = 768;
  std::vector<float> x(rows * dim, 1.0f), w(dim, 1.0f), y(rows * dim);
  for (auto _ : state) RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, y.data());
}
BENCHMARK(BM_RmsNorm)->Arg(1)->Arg(512)->UseRealTime();

void BM_DecodeAttention(benchmark::State& state) {
  const int ctx = state.range(0), heads = 12, d = 64;
  std::vector<float> q(heads * d, 0.1f), k(ctx * heads * d, 0.1f), v(ctx * heads * d, 0.1f), o(heads * d);
  CausalAttentionParams p{q.data(), k.data(), v.data(), o.data(), 1, ctx - 1, heads, heads, d, 0.125f};
  for (auto _ : state) benchmark::DoNotOptimize(CausalAttention(p));
  state.counters["GB/s(KV)"] = benchmark::Counter(8.0 * ctx * heads * d, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_DecodeAttention)->Arg(512)->Arg(4096)->UseRealTime();

void BM_Rope(benchmark::State& state) {
  Rope rope(64, 10000.0f, 1.0f, RopeStyle::kNeoX);
  std::vector<float> x(512 * 768, 0.5f);
  for (auto _ : state) rope.ApplyRows(x.data(), 512, 768, 12, 0.0);
}
BENCHMARK(BM_Rope)->UseRealTime();

}  // namespace
}  // namespace hr::cpu

namespace hr::cpu {
namespace {

// One query head over `slots` chunks of `w` keys (decode at a window of slots·w).
void BM_SlotAttention(benchmark::State& state) {
  const int d = state.range(0), w = state.range(1), slots = state.range(2);
  Rope rope(d, 10000.0f, 1.0f, RopeStyle::kNeoX);
  RopeStepTable steps(rope, w);
  steps.Reserve(slots);
  std::vector<float> k(slots * w * d, 0.01f), v(slots * w * d, 0.02f), q(d, 0.1f), out(d), scratch(w + d);
  std::vector<SlotChunk> chunks;
  for (int s = 0; s < slots; ++s) chunks.push_back({k.data() + s * w * d, v.data() + s * w * d, w, slots - 1 - s});
  SlotAttentionParams p{q.data(), chunks.data(), slots, d, 0.125f, &steps, out.data(), scratch.data()};
  for (auto _ : state) SlotAttention(p);
  state.counters["GB/s(KV)"] = benchmark::Counter(8.0 * slots * w * d, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_SlotAttention)->Args({64, 256, 8})->Args({8, 64, 8})->Args({128, 128, 16})->UseRealTime();

// Decode chunk scoring at 128K (PagedSequence::ScoreCandidates with one
// query): per layer, 12 summary heads each score 509 candidate chunks with
// one 1 x 128 x 509 product (bound summaries: [q, |q|] · [centre, radius]),
// one summary head after another (arg 0) or one per thread (arg 1). The 12
// layers' rows (37 MB) are cycled, so every product reads from memory, as
// in a decode step, where the weights evict them between layers.
void BM_DecodeChunkScoring(benchmark::State& state) {
  const bool threaded = state.range(0) != 0;
  const int layers = 12, heads = 12, K = 128, n = 509;
  std::vector<std::vector<float>> rows(layers * heads, std::vector<float>(n * K, 0.01f));
  std::vector<float> x(K, 0.5f), y(heads * n);
  int layer = 0;
  for (auto _ : state) {
#pragma omp parallel for schedule(static) if (threaded)
    for (int h = 0; h < heads; ++h) {
      MatMulWtSmallM(x.data(), 1, K, rows[layer * heads + h].data(), n, y.data() + h * n);
    }
    layer = (layer + 1) % layers;
  }
  state.counters["GB/s(summaries)"] = benchmark::Counter(4.0 * heads * n * K, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_DecodeChunkScoring)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace hr::cpu
