// CUDA forward pass benchmark (issue 6, design.md §7): the ~100M benchmark
// model (bench_model.h flags, random weights) on the GPU, all numbers from
// one run on one card.
//   1. limits measured in this run: cuBLAS 8192³ (BF16 in / FP32 acc, and
//      FP32), and the model's own GEMMs alone at each prefill length (the
//      four per-layer projections × layers + one LM-head row): the rate a
//      GEMM-bound prefill could reach;
//   2. prefill: one Forward call over a random prompt of N tokens (logits of
//      the last token), `full`, `longheads` (exact per-token selection) and
//      `longheads_chunk` (one list per chunk), BF16 and FP32 weights; tokens/s, linear-layer TFLOP/s and their ratio
//      to cuBLAS 8192³ in the same dtype (target >= 50%), and the ratio to
//      the GEMM-only time at the same N; model TFLOP/s (the linear layers
//      and attention's two products over the keys each query attends) and
//      their ratio to the rate of the model's own GEMMs alone;
//   3. decode: one token per Forward call at several contexts, `full` and
//      `longheads`, on a KV cache filled with random keys/values and built
//      summaries (no prefill needed), BF16 weights and KV;
//   4. batched decode: B sequences at one context, one token each per
//      Forward call (a serving step without the server): us per step, and
//      the share of it the host waits for the logits to reach it.
//
//   build/bench/cuda_model_bench [--prefill_tokens 512,4096] [--decode_contexts 4096] > out.md
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/bench_model.h"
#include "bench/cuda_limits.h"
#include "kernels/cuda/cuda_kernels.h"
#include "server/backend_cuda/cuda_kv_cache.h"
#include "server/backend_cuda/device_buffer.h"
#include "server/backend_cuda/cuda_llama_model.h"
#include "server/common/splitmix64.h"
#include "server/model/weights.h"

ABSL_FLAG(std::string, prefill_tokens, "512,2048,4096,8192", "prompt lengths of the timed prefills");
ABSL_FLAG(std::string, decode_contexts, "4096,16384,65536,131072", "decode contexts (tokens)");
ABSL_FLAG(int32_t, chunk_size, 256, "tokens per chunk (= KV block)");
ABSL_FLAG(int32_t, atten_length, 2048, "longheads window per head (tokens)");
ABSL_FLAG(int32_t, decode_tokens, 20, "decode steps timed per (context, policy); median reported");
ABSL_FLAG(int32_t, reps, 3,
          "timed prefills per point (after one warm-up; times 2048 / tokens below 2048 tokens, whose host-timed "
          "runs vary most); median reported");
ABSL_FLAG(std::string, batch_sizes, "1,8,64", "sequences per batched decode step (section 4)");
ABSL_FLAG(int32_t, batch_context, 1024, "tokens in each sequence's cache before a batched decode step");

namespace hr::bench {
namespace {

#define CHECK_STATUS(expr)                                                                   \
  do {                                                                                       \
    const absl::Status s_ = (expr);                                                          \
    if (!s_.ok()) {                                                                          \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, s_.ToString().c_str()); \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

std::vector<int64_t> ParseList(const std::string& s) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Milliseconds of fn (synchronous), median of reps after one warm-up.
template <typename Fn>
double HostMs(int reps, Fn fn) {
  fn();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const double t0 = NowMs();
    fn();
    ms.push_back(NowMs() - t0);
  }
  return Median(ms);
}

struct DeviceMem {
  std::vector<void*> ptrs;
  void* operator()(int64_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<int64_t>(bytes, 16)) != cudaSuccess) std::exit(1);
    ptrs.push_back(p);
    return p;
  }
  ~DeviceMem() {
    for (void* p : ptrs) cudaFree(p);
  }
};

// Milliseconds of a list of GEMMs {m, n, k} (median of 10 after warm-up).
// One GEMM as the model runs it: c [m, n] = a [m, k] · bᵀ (+ c when beta = 1),
// c in c_dtype.
struct GemmShape {
  int64_t m, n, k;
  cuda::DType c_dtype = cuda::DType::kF32;
  float beta = 0.0f;
};

double GemmsMs(const std::vector<GemmShape>& shapes, cuda::DType ab, int repeat_each) {
  DeviceMem mem;
  struct Op {
    cuda::GemmParams p;
  };
  std::vector<Op> ops;
  for (const auto& s : shapes) {
    cuda::GemmParams p;
    p.m = s.m;
    p.n = s.n;
    p.k = s.k;
    p.ab_dtype = ab;
    p.c_dtype = s.c_dtype;
    p.beta = s.beta;
    p.d_a = mem(p.m * p.k * cuda::DTypeBytes(ab));
    p.d_b = mem(p.n * p.k * cuda::DTypeBytes(ab));
    p.d_c = mem(p.m * p.n * 4);
    if (cudaMemset(p.d_c, 0, p.m * p.n * 4) != cudaSuccess) std::exit(1);
    CudaFillRandom(const_cast<void*>(p.d_a), p.m * p.k, ab, 1, 1.0f);
    CudaFillRandom(const_cast<void*>(p.d_b), p.n * p.k, ab, 2, 0.05f);
    ops.push_back({p});
  }
  auto run = [&] {
    for (int r = 0; r < repeat_each; ++r) {
      for (const Op& o : ops) {
        if (cuda::Gemm(o.p) != cuda::CudaStatus::kOk) std::exit(1);
      }
    }
    cudaDeviceSynchronize();
  };
  return HostMs(10, run);
}

const char* Name(WeightDType w) { return w == WeightDType::kBF16 ? "bf16" : "f32"; }

// Linear-layer FLOPs of a prefill of n tokens (logits of the last one only).
double LinearFlops(const ModelConfig& c, int64_t n) {
  const double per_layer = static_cast<double>(c.dim) * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim +
                           static_cast<double>(c.n_heads) * c.head_dim * c.dim + 3.0 * c.dim * c.ffn_dim;
  return 2.0 * n * per_layer * c.n_layers + 2.0 * c.vocab_size * c.dim;
}

// Fills `seq` with n_tokens of random keys and values (every layer) and
// builds the summaries of its complete chunks, as if prefilled.
void FillSynthetic(CudaLlamaModel& model, CudaSequence* seq, int64_t n_tokens) {
  const CudaKvCache& cache = model.kv_cache();
  CHECK_STATUS(seq->Reserve(n_tokens, nullptr));
  const int64_t w = cache.chunk_size();
  const ModelConfig& c = model.config();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const cuda::PagedKvLayer kv = cache.Layer(l);
    const int64_t bytes = cuda::DTypeBytes(kv.dtype);
    for (size_t i = 0; i < seq->blocks().size(); ++i) {
      char* base = static_cast<char*>(kv.d_base) + seq->blocks()[i] * kv.block_stride * bytes;
      CudaFillRandom(base, kv.block_stride, kv.dtype, 1000 * l + i, 1.7f);
    }
    cuda::ChunkSummaryParams sp;
    sp.kv = kv;
    sp.d_blocks = seq->d_block_table();
    sp.n_chunks = static_cast<int32_t>(n_tokens / w);
    sp.out = cache.Summaries(l);
    if (cuda::BuildChunkSummaries(sp) != cuda::CudaStatus::kOk) std::exit(1);
  }
  cudaDeviceSynchronize();
  seq->Commit(n_tokens);
}

LongContextParams Policy(AttentionPolicy p, PrefillSelection prefill = PrefillSelection::kPerToken) {
  LongContextParams lp;
  lp.policy = p;
  lp.chunk_size = absl::GetFlag(FLAGS_chunk_size);
  lp.atten_length = absl::GetFlag(FLAGS_atten_length);
  lp.prefill = prefill;
  return lp;
}

// The prefill rows: full, longheads with per-token lists, longheads with one
// list per chunk (PrefillSelection::kPerChunk).
struct PrefillPolicy {
  const char* name;
  LongContextParams params;
};

// The model of the decode sections: BF16 weights and KV, a cache of
// kv_blocks blocks, at most max_sequences sequences a step.
absl::StatusOr<std::unique_ptr<CudaLlamaModel>> DecodeModel(const LlamaWeights& weights, int32_t chunk_size,
                                                           int64_t kv_blocks, int64_t max_sequences) {
  const ModelConfig& c = weights.config;
  CudaModelOptions o;
  o.weights = WeightDType::kBF16;
  o.kv_dtype = KvDType::kBF16;
  o.chunk_size = chunk_size;
  o.kv_budget_bytes =
      CudaKvCache::BlockBytes({c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim}, o.kv_dtype, chunk_size) * kv_blocks;
  o.max_sequences = max_sequences;
  return CudaLlamaModel::Create(weights, o);
}

int Run() {
  auto cfg = BenchModelConfig();
  if (!cfg.ok()) {
    std::fprintf(stderr, "%s\n", cfg.status().ToString().c_str());
    return 1;
  }
  if (cuda::DeviceCount() == 0) {
    std::fprintf(stderr, "no CUDA device visible\n");
    return 1;
  }
  const ModelConfig& c = *cfg;
  const int32_t w = absl::GetFlag(FLAGS_chunk_size);
  const std::vector<int64_t> prefill = ParseList(absl::GetFlag(FLAGS_prefill_tokens));
  const std::vector<int64_t> contexts = ParseList(absl::GetFlag(FLAGS_decode_contexts));
  const int64_t max_prefill = prefill.empty() ? 0 : *std::max_element(prefill.begin(), prefill.end());
  const int64_t max_context = contexts.empty() ? 0 : *std::max_element(contexts.begin(), contexts.end());
  const LlamaWeights weights = RandomLlamaWeights(c, 1);

  std::printf("# CUDA forward pass benchmark\n\n");
  std::printf("- Device: %s\n", cuda::DeviceName(0).c_str());
  std::printf("- Model (bench_model flags, random weights): dim %lld, %lld layers, %lld heads (%lld KV), "
              "head_dim %lld, ffn %lld, vocab %lld: %.1fM parameters\n",
              (long long)c.dim, (long long)c.n_layers, (long long)c.n_heads, (long long)c.n_kv_heads,
              (long long)c.head_dim, (long long)c.ffn_dim, (long long)c.vocab_size,
              (LinearFlops(c, 1) / 2 + static_cast<double>(c.vocab_size) * c.dim) / 1e6);
  std::printf("- Paged KV: chunk_size %d; longheads atten_length %d (%d slots), summary bound, "
              "per-query-head; prefill selection per token (`longheads`) or per chunk (`longheads_chunk`)\n\n",
              w, absl::GetFlag(FLAGS_atten_length), absl::GetFlag(FLAGS_atten_length) / w);

  // 1. Limits.
  double peak[2];
  const WeightDType kinds[2] = {WeightDType::kBF16, WeightDType::kF32};
  for (int i = 0; i < 2; ++i) {
    const cuda::DType dt = kinds[i] == WeightDType::kBF16 ? cuda::DType::kBF16 : cuda::DType::kF32;
    const double ms = GemmsMs({{8192, 8192, 8192}}, dt, 1);
    peak[i] = 2.0 * 8192.0 * 8192.0 * 8192.0 / (ms * 1e-3) / 1e12;
  }
  std::printf("## Limits (this run)\n\n| probe | TFLOP/s |\n|---|---|\n");
  std::printf("| cuBLAS 8192³ BF16 in, FP32 accumulate | %.1f |\n| cuBLAS 8192³ FP32 (no TF32) | %.1f |\n\n",
              peak[0], peak[1]);

  // 2. Prefill.
  std::printf("## Prefill (one Forward call, logits of the last token)\n\n");
  std::printf("Linear TFLOP/s = the model's projection FLOPs (2·tokens·params of the layers + one LM-head row) "
              "/ time; `of 8192³` = that / cuBLAS 8192³ in the same dtype (target >= 50%%); `GEMM-only ms` = the "
              "same GEMMs alone (per-layer qkv, out, gate|up, down × layers at m = tokens, one LM-head row; "
              "out and down added to an F32 residual, gate|up written in the weights' dtype, as the model runs "
              "them); "
              "`vs GEMM-only` = GEMM-only ms / prefill ms. Model TFLOP/s = the projection FLOPs plus attention's "
              "Q·Kᵀ and P·V over the keys each (query, head) attends (4·head_dim per key: causal for `full`, the "
              "selected chunks for `longheads`; the sequence's keys_attended counter) / time; `of GEMM rate` = "
              "that / the rate of the GEMM-only run (projection FLOPs / GEMM-only ms).\n\n");
  std::printf("| weights | policy | tokens | ms | tokens/s | linear TFLOP/s | of 8192³ | GEMM-only ms | vs GEMM-only "
              "| model TFLOP/s | of GEMM rate |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int i = 0; i < 2; ++i) {
    CudaModelOptions o;
    o.weights = kinds[i];
    o.kv_dtype = kinds[i] == WeightDType::kBF16 ? KvDType::kBF16 : KvDType::kF32;
    o.chunk_size = w;
    o.kv_budget_bytes = CudaKvCache::BlockBytes({c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim}, o.kv_dtype, w) *
                        ((max_prefill + w - 1) / w + 2);
    auto model = CudaLlamaModel::Create(weights, o);
    CHECK_STATUS(model.status());
    const cuda::DType dt = kinds[i] == WeightDType::kBF16 ? cuda::DType::kBF16 : cuda::DType::kF32;
    for (int64_t n : prefill) {
      const int64_t qkv = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
      // Output dtypes and accumulation as CudaLlamaModel runs them: the
      // out and down products are added to the F32 residual stream, gate|up
      // is written in the weights' dtype (SwiGLU reads it).
      const std::vector<GemmShape> shapes = {{n, qkv, c.dim},
                                             {n, c.dim, c.n_heads * c.head_dim, cuda::DType::kF32, 1.0f},
                                             {n, 2 * c.ffn_dim, c.dim, dt},
                                             {n, c.dim, c.ffn_dim, cuda::DType::kF32, 1.0f}};
      const double gemm_ms = GemmsMs(shapes, dt, static_cast<int>(c.n_layers)) + GemmsMs({{1, c.vocab_size, c.dim}}, dt, 1);
      SplitMix64 rng{static_cast<uint64_t>(n)};
      std::vector<int32_t> prompt(n);
      for (auto& t : prompt) t = static_cast<int32_t>(rng.Below(c.vocab_size));
      const PrefillPolicy policies[] = {{"full", Policy(AttentionPolicy::kFull)},
                                        {"longheads", Policy(AttentionPolicy::kLongHeads)},
                                        {"longheads_chunk",
                                         Policy(AttentionPolicy::kLongHeads, PrefillSelection::kPerChunk)}};
      for (const PrefillPolicy& pp : policies) {
        std::vector<float> logits;
        int64_t keys_attended = 0;  // (query, head, key) over all layers, of one prefill
        const int reps = absl::GetFlag(FLAGS_reps) * static_cast<int>(std::max<int64_t>(1, 2048 / n));
        const double ms = HostMs(reps, [&] {
          auto seq = (*model)->NewSequence(pp.params, n);
          CHECK_STATUS(seq.status());
          CudaBatchEntry e{seq->get(), prompt, false};
          CHECK_STATUS((*model)->Forward({&e, 1}, &logits));
          keys_attended = (*seq)->stats().keys_attended;
        });
        const double tflops = LinearFlops(c, n) / (ms * 1e-3) / 1e12;
        const double model_tflops =
            (LinearFlops(c, n) + 4.0 * c.head_dim * static_cast<double>(keys_attended)) / (ms * 1e-3) / 1e12;
        const double gemm_tflops = LinearFlops(c, n) / (gemm_ms * 1e-3) / 1e12;
        std::printf("| %s | %s | %lld | %.2f | %.0f | %.1f | %.0f%% | %.2f | %.0f%% | %.1f | %.0f%% |\n",
                    Name(kinds[i]), pp.name, (long long)n, ms, n / (ms * 1e-3), tflops, 100.0 * tflops / peak[i],
                    gemm_ms, 100.0 * gemm_ms / ms, model_tflops, 100.0 * model_tflops / gemm_tflops);
        std::fflush(stdout);
      }
    }
  }

  // 3. Decode.
  std::printf("\n## Decode (one token per Forward call, BF16 weights and KV)\n\n");
  std::printf("Context = tokens in the cache before the step (random keys/values, summaries built). "
              "Median of %d steps; host-timed (a Forward call returns with the logits on the host).\n\n",
              absl::GetFlag(FLAGS_decode_tokens));
  std::printf("| context | policy | us/token | tokens/s | vs 4096 |\n|---|---|---|---|---|\n");
  {
    const int64_t steps = absl::GetFlag(FLAGS_decode_tokens) + 1;
    auto model = DecodeModel(weights, w, (max_context + steps + w - 1) / w + 2, 1);
    CHECK_STATUS(model.status());
    for (AttentionPolicy p : {AttentionPolicy::kFull, AttentionPolicy::kLongHeads}) {
      double first = 0.0;
      for (int64_t L : contexts) {
        auto seq = (*model)->NewSequence(Policy(p), L + steps);
        CHECK_STATUS(seq.status());
        FillSynthetic(**model, seq->get(), L - 1);
        std::vector<float> logits;
        std::vector<double> us;
        int32_t token = 7;
        for (int64_t s = 0; s < steps; ++s) {
          CudaBatchEntry e{seq->get(), std::span<const int32_t>(&token, 1), false};
          const double t0 = NowMs();
          CHECK_STATUS((*model)->Forward({&e, 1}, &logits));
          if (s > 0) us.push_back((NowMs() - t0) * 1e3);
          token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        }
        const double med = Median(us);
        if (first == 0.0) first = med;
        std::printf("| %lld | %s | %.1f | %.0f | %.2fx |\n", (long long)L, std::string(PolicyName(p)).c_str(), med,
                    1e6 / med, med / first);
        std::fflush(stdout);
      }
    }
  }

  // 4. Batched decode.
  const std::vector<int64_t> batch_sizes = ParseList(absl::GetFlag(FLAGS_batch_sizes));
  const int64_t L = absl::GetFlag(FLAGS_batch_context);
  std::printf("\n## Batched decode (B sequences at %lld tokens, one token each per Forward call)\n\n", (long long)L);
  std::printf("BF16 weights and KV; median of %d steps, host-timed; `logits copy ms` = one cudaMemcpy of the "
              "step's B logit rows to pageable host memory, timed alone.\n\n",
              absl::GetFlag(FLAGS_decode_tokens));
  std::printf("| B | policy | ms/step | tokens/s | logits copy ms |\n|---|---|---|---|---|\n");
  if (!batch_sizes.empty()) {
    const int64_t max_b = *std::max_element(batch_sizes.begin(), batch_sizes.end());
    const int64_t steps = absl::GetFlag(FLAGS_decode_tokens) + 1;
    auto model = DecodeModel(weights, w, max_b * ((L + steps + w - 1) / w + 1), max_b);
    CHECK_STATUS(model.status());
    for (AttentionPolicy p : {AttentionPolicy::kFull, AttentionPolicy::kLongHeads}) {
      for (int64_t b : batch_sizes) {
        std::vector<std::unique_ptr<CudaSequence>> seqs;
        for (int64_t i = 0; i < b; ++i) {
          auto seq = (*model)->NewSequence(Policy(p), L + steps);
          CHECK_STATUS(seq.status());
          FillSynthetic(**model, seq->get(), L - 1);
          seqs.push_back(std::move(*seq));
        }
        std::vector<int32_t> tokens(b, 7);
        std::vector<float> logits;
        std::vector<double> ms;
        for (int64_t s = 0; s < steps; ++s) {
          std::vector<CudaBatchEntry> batch;
          for (int64_t i = 0; i < b; ++i) batch.push_back({seqs[i].get(), std::span<const int32_t>(&tokens[i], 1)});
          const double t0 = NowMs();
          CHECK_STATUS((*model)->Forward(batch, &logits));
          if (s > 0) ms.push_back(NowMs() - t0);
        }
        // The same bytes as the step's logits, device to pageable host memory.
        DeviceBuffer d;
        std::vector<float> host(logits.size());
        CHECK_STATUS(d.Reserve(static_cast<int64_t>(host.size()) * 4));
        cudaMemcpy(host.data(), d.get(), host.size() * 4, cudaMemcpyDeviceToHost);  // warm-up
        const double t0 = NowMs();
        cudaMemcpy(host.data(), d.get(), host.size() * 4, cudaMemcpyDeviceToHost);
        const double copy_ms = NowMs() - t0;
        const double med = Median(ms);
        std::printf("| %lld | %s | %.2f | %.0f | %.2f |\n", (long long)b, std::string(PolicyName(p)).c_str(), med,
                    b / (med * 1e-3), copy_ms);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace hr::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return hr::bench::Run();
}
