// CUDA backend benchmark (design.md §7), all numbers from one run on one GPU:
//   1. the device's limits: device-to-device copy and read-only bandwidth,
//      cuBLAS GEMM rate (8192³, FP32 and BF16);
//   2. cuBLAS GEMM rate at the shapes of the benchmark model (bench_model.h
//      flags) for a prefill of --gemm_tokens tokens: the ceiling of a GEMM-
//      bound prefill (the whole forward pass: bench/cuda_model_bench.cc);
//   3. decode per token over every layer at each context: `full` (all
//      chunks) and `longheads` (chunk scores, top-k selection, attention over
//      --atten_length per head), on a synthetic paged KV cache in device
//      memory; GB/s on the bytes each must read (KV of the keys attended plus
//      the summaries scored) against the read bandwidth measured above;
//   4. batched longheads decode attention (--batch sequences);
//   5. prefill of one chunk of queries with exact per-token selection.
//
//   build/bench/cuda_bench [--contexts 4096,131072] [--kv_dtypes bf16] > out.md
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/bench_model.h"
#include "bench/cuda_limits.h"
#include "kernels/cuda/cuda_kernels.h"

ABSL_FLAG(std::string, contexts, "4096,16384,65536,131072", "decode contexts (tokens)");
ABSL_FLAG(std::string, kv_dtypes, "bf16,f32", "KV cache dtypes: f32, f16, bf16");
ABSL_FLAG(int32_t, chunk_size, 256, "tokens per chunk (= KV block)");
ABSL_FLAG(int32_t, atten_length, 2048, "longheads window per head (tokens)");
ABSL_FLAG(std::string, summary, "bound", "longheads chunk summary scored: bound, longheads, mean");
ABSL_FLAG(int32_t, tokens, 20, "decode tokens timed per (context, policy); the median is reported");
ABSL_FLAG(int32_t, batch, 32, "sequences in the batched decode attention measurement");
ABSL_FLAG(int32_t, prefill_queries, 256, "queries of the timed prefill chunk");
ABSL_FLAG(int64_t, gemm_tokens, 4096, "tokens (GEMM rows) of the model-shape GEMMs");

namespace hr::bench {
namespace {

using cuda::CudaStatus;
using cuda::DType;

#define CHECK_OK(expr)                                                                       \
  do {                                                                                       \
    const CudaStatus s_ = (expr);                                                            \
    if (s_ != CudaStatus::kOk) {                                                             \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cuda::StatusName(s_)); \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)
#define CHECK_CUDA(expr)                                                                     \
  do {                                                                                       \
    const cudaError_t e_ = (expr);                                                           \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

void* Alloc(size_t bytes) {
  void* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
  return p;
}

struct Freer {
  std::vector<void*> ptrs;
  void* operator()(size_t bytes) {
    ptrs.push_back(Alloc(bytes));
    return ptrs.back();
  }
  ~Freer() {
    for (void* p : ptrs) cudaFree(p);
  }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median milliseconds of `reps` runs of fn (after two warm-ups), by events.
template <typename Fn>
double TimeMs(int reps, Fn fn) {
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  fn();
  fn();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(e0));
    fn();
    CHECK_CUDA(cudaEventRecord(e1));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float t = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  CHECK_CUDA(cudaEventDestroy(e0));
  CHECK_CUDA(cudaEventDestroy(e1));
  CHECK_CUDA(cudaGetLastError());
  return Median(ms);
}

// Median milliseconds of `reps` replays of a CUDA graph captured from fn
// (which enqueues on `stream`); -1 when capture is not possible.
template <typename Fn>
double GraphTimeMs(int reps, cudaStream_t stream, Fn fn) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
    cudaGetLastError();
    return -1.0;
  }
  fn();
  if (cudaStreamEndCapture(stream, &graph) != cudaSuccess ||
      cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
    cudaGetLastError();
    if (graph != nullptr) cudaGraphDestroy(graph);
    return -1.0;
  }
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  std::vector<double> ms;
  for (int r = -2; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(e0, stream));
    CHECK_CUDA(cudaGraphLaunch(exec, stream));
    CHECK_CUDA(cudaEventRecord(e1, stream));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float t = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&t, e0, e1));
    if (r >= 0) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return Median(ms);
}

DType ParseDType(const std::string& s) {
  if (s == "f32") return DType::kF32;
  if (s == "f16") return DType::kF16;
  if (s == "bf16") return DType::kBF16;
  std::fprintf(stderr, "unknown dtype %s\n", s.c_str());
  std::exit(1);
}
const char* DTypeName(DType t) { return t == DType::kF32 ? "f32" : t == DType::kF16 ? "f16" : "bf16"; }

// TFLOP/s of c[m,n] = a[m,k]·b[n,k]ᵀ, median of 10.
double GemmTflops(int64_t m, int64_t n, int64_t k, DType ab, double* ms_out = nullptr) {
  Freer mem;
  void* a = mem(m * k * cuda::DTypeBytes(ab));
  void* b = mem(n * k * cuda::DTypeBytes(ab));
  void* c = mem(m * n * 4);
  CudaFillRandom(a, m * k, ab, 1, 1.0f);
  CudaFillRandom(b, n * k, ab, 2, 1.0f);
  cuda::GemmParams p;
  p.d_a = a;
  p.d_b = b;
  p.d_c = c;
  p.m = m;
  p.n = n;
  p.k = k;
  p.ab_dtype = ab;
  p.c_dtype = DType::kF32;
  const double ms = TimeMs(10, [&] { CHECK_OK(cuda::Gemm(p)); });
  if (ms_out != nullptr) *ms_out = ms;
  return 2.0 * m * n * k / (ms * 1e-3) / 1e12;
}

// A synthetic paged KV cache for every layer: --contexts' maximum, random
// keys and values, random summaries of every kind, identity block table.
struct SyntheticCache {
  int64_t n_blocks, w, G, H, d, layers;
  DType dtype;
  std::vector<void*> kv;                 // per layer
  std::vector<cuda::SummaryStore> sums;  // per layer
  int32_t* d_table;
  Freer mem;

  cuda::PagedKvLayer Layer(int64_t layer) const {
    cuda::PagedKvLayer l;
    l.d_base = kv[layer];
    l.block_stride = 2 * G * w * d;
    l.value_offset = G * w * d;
    l.chunk_size = static_cast<int32_t>(w);
    l.n_kv_heads = static_cast<int32_t>(G);
    l.head_dim = static_cast<int32_t>(d);
    l.dtype = dtype;
    return l;
  }
};

std::unique_ptr<SyntheticCache> MakeCache(const ModelConfig& cfg, int64_t max_context, int64_t w,
                                          DType dtype) {
  auto c = std::make_unique<SyntheticCache>();
  c->n_blocks = (max_context + w - 1) / w + 1;
  c->w = w;
  c->G = cfg.n_kv_heads;
  c->H = cfg.n_heads;
  c->d = cfg.head_dim;
  c->layers = cfg.n_layers;
  c->dtype = dtype;
  const int64_t elems = c->n_blocks * 2 * c->G * w * c->d;
  for (int64_t l = 0; l < c->layers; ++l) {
    c->kv.push_back(c->mem(elems * cuda::DTypeBytes(dtype)));
    CudaFillRandom(c->kv.back(), elems, dtype, 100 + l, 1.7f);
    cuda::SummaryStore s;
    s.d_longheads = static_cast<float*>(c->mem(c->n_blocks * c->H * c->d * 4));
    s.d_bound = static_cast<float*>(c->mem(c->n_blocks * c->G * 2 * c->d * 4));
    s.d_mean = static_cast<float*>(c->mem(c->n_blocks * c->G * c->d * 4));
    CudaFillRandom(s.d_longheads, c->n_blocks * c->H * c->d, DType::kF32, 200 + l, 1.0f);
    CudaFillRandom(s.d_bound, c->n_blocks * c->G * 2 * c->d, DType::kF32, 300 + l, 1.0f);
    CudaFillRandom(s.d_mean, c->n_blocks * c->G * c->d, DType::kF32, 400 + l, 1.0f);
    c->sums.push_back(s);
  }
  std::vector<int32_t> table(c->n_blocks);
  for (int64_t i = 0; i < c->n_blocks; ++i) table[i] = static_cast<int32_t>(i);
  c->d_table = static_cast<int32_t*>(c->mem(table.size() * 4));
  CHECK_CUDA(cudaMemcpy(c->d_table, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaDeviceSynchronize());
  return c;
}

cuda::ScoreKind ParseScoreKind(const std::string& s) {
  if (s == "longheads") return cuda::ScoreKind::kLongHeads;
  if (s == "mean") return cuda::ScoreKind::kMean;
  return cuda::ScoreKind::kBound;
}

int64_t SummaryBytesPerChunk(cuda::ScoreKind kind, int64_t H, int64_t G, int64_t d) {
  return kind == cuda::ScoreKind::kLongHeads ? H * d * 4 : kind == cuda::ScoreKind::kBound ? G * 2 * d * 4 : G * d * 4;
}

int Run() {
  absl::StatusOr<ModelConfig> cfg_or = BenchModelConfig();
  if (!cfg_or.ok()) {
    std::fprintf(stderr, "%s\n", cfg_or.status().ToString().c_str());
    return 1;
  }
  const ModelConfig cfg = *cfg_or;
  if (cuda::DeviceCount() == 0) {
    std::printf("No CUDA device visible: nothing measured.\n");
    return 0;
  }
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  std::vector<int64_t> contexts;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_contexts), ',')) {
    int64_t v = 0;
    if (absl::SimpleAtoi(s, &v)) contexts.push_back(v);
  }
  const int64_t w = absl::GetFlag(FLAGS_chunk_size);
  const int32_t slots = absl::GetFlag(FLAGS_atten_length) / static_cast<int32_t>(w);
  const cuda::ScoreKind kind = ParseScoreKind(absl::GetFlag(FLAGS_summary));
  const int64_t H = cfg.n_heads, G = cfg.n_kv_heads, d = cfg.head_dim, layers = cfg.n_layers;
  const int tokens = absl::GetFlag(FLAGS_tokens);

  std::printf("# CUDA backend benchmark\n\n");
  std::printf("- Device: %s; CUDA runtime %d, driver %d\n", cuda::DeviceName(0).c_str(), runtime, driver);
  std::printf("- Model shape (bench_model flags): dim %lld, %lld layers, %lld heads (%lld KV), head_dim %lld, ffn %lld, vocab %lld\n",
              (long long)cfg.dim, (long long)layers, (long long)H, (long long)G, (long long)d,
              (long long)cfg.ffn_dim, (long long)cfg.vocab_size);
  std::printf("- Paged KV: chunk_size %lld; longheads atten_length %d (%d slots), summary %s, per-query-head selection\n\n",
              (long long)w, absl::GetFlag(FLAGS_atten_length), slots, absl::GetFlag(FLAGS_summary).c_str());

  // 1. Limits.
  const double copy_bw = CudaCopyBandwidth(size_t{1} << 30, 10);
  const double read_bw = CudaReadBandwidth(size_t{2} << 30, 10);
  const double big_bf16 = GemmTflops(8192, 8192, 8192, DType::kBF16);
  const double big_f32 = GemmTflops(8192, 8192, 8192, DType::kF32);
  std::printf("## Device limits (this run)\n\n| probe | result |\n|---|---|\n");
  std::printf("| cudaMemcpy D2D 1 GiB, (read + written) / s | %.0f GB/s |\n", copy_bw / 1e9);
  std::printf("| read-only kernel over 2 GiB, read / s | %.0f GB/s |\n", read_bw / 1e9);
  std::printf("| cuBLAS 8192³ BF16 in, FP32 accumulate | %.1f TFLOP/s |\n", big_bf16);
  std::printf("| cuBLAS 8192³ FP32 (no TF32) | %.1f TFLOP/s |\n\n", big_f32);

  // 2. GEMMs at the model's shapes.
  const int64_t m = absl::GetFlag(FLAGS_gemm_tokens);
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {{"qkv", (H + 2 * G) * d, cfg.dim},
                          {"attn out", cfg.dim, H * d},
                          {"gate+up", 2 * cfg.ffn_dim, cfg.dim},
                          {"down", cfg.dim, cfg.ffn_dim},
                          {"lm head", cfg.vocab_size, cfg.dim}};
  std::printf("## cuBLAS at the model's shapes (m = %lld tokens)\n\n", (long long)m);
  std::printf("| matrix | n x k | BF16 TFLOP/s | of 8192³ BF16 | FP32 TFLOP/s | of 8192³ FP32 |\n|---|---|---|---|---|---|\n");
  double layer_flops = 0, layer_ms_bf16 = 0, layer_ms_f32 = 0;
  for (const Shape& s : shapes) {
    double ms16 = 0, ms32 = 0;
    const double t16 = GemmTflops(m, s.n, s.k, DType::kBF16, &ms16);
    const double t32 = GemmTflops(m, s.n, s.k, DType::kF32, &ms32);
    std::printf("| %s | %lld x %lld | %.1f | %.0f%% | %.1f | %.0f%% |\n", s.name, (long long)s.n,
                (long long)s.k, t16, 100 * t16 / big_bf16, t32, 100 * t32 / big_f32);
    if (std::string(s.name) != "lm head") {
      layer_flops += 2.0 * m * s.n * s.k;
      layer_ms_bf16 += ms16;
      layer_ms_f32 += ms32;
    }
  }
  const double gemm_prefill_bf16 = layer_flops / (layer_ms_bf16 * 1e-3) / 1e12;
  std::printf("\nOne layer's four projections (lm head excluded): %.1f TFLOP/s BF16 (%.0f%% of 8192³), "
              "%.1f TFLOP/s FP32 (%.0f%%): %.0f tokens/s of GEMM-only prefill over %lld layers (BF16).\n\n",
              gemm_prefill_bf16, 100 * gemm_prefill_bf16 / big_bf16,
              layer_flops / (layer_ms_f32 * 1e-3) / 1e12, 100 * layer_flops / (layer_ms_f32 * 1e-3) / 1e12 / big_f32,
              m / (layers * layer_ms_bf16 * 1e-3), (long long)layers);

  const int64_t max_context = *std::max_element(contexts.begin(), contexts.end());
  for (const std::string& dt : std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_kv_dtypes), ','))) {
    const DType dtype = ParseDType(dt);
    const int64_t eb = cuda::DTypeBytes(dtype);
    std::unique_ptr<SyntheticCache> cache = MakeCache(cfg, max_context, w, dtype);
    Freer mem;
    std::unique_ptr<cuda::RopeTables> rope;
    CHECK_OK(cuda::RopeTables::Create(d, cfg.rope_theta, 1.0f, cfg.rope_style, w, cache->n_blocks, &rope));
    const int32_t B = absl::GetFlag(FLAGS_batch);
    const int32_t nq_max = std::max<int32_t>(B, absl::GetFlag(FLAGS_prefill_queries));
    float* d_q = static_cast<float*>(mem(nq_max * H * d * 4));
    CudaFillRandom(d_q, nq_max * H * d, DType::kF32, 9, 1.0f);
    float* d_out = static_cast<float*>(mem(nq_max * H * d * 4));
    const size_t ws_bytes = cuda::DecodeAttentionWorkspaceBytes(B, H, d, 1024);
    float* d_ws = static_cast<float*>(mem(ws_bytes));
    float* d_scores = static_cast<float*>(mem(static_cast<size_t>(nq_max) * H * cache->n_blocks * 4));
    int32_t* d_chunks = static_cast<int32_t*>(mem(static_cast<size_t>(nq_max) * H * cache->n_blocks * 4));
    int32_t* d_blocks = static_cast<int32_t*>(mem(static_cast<size_t>(nq_max) * H * cache->n_blocks * 4));
    int32_t* d_pos = static_cast<int32_t*>(mem(nq_max * 4));
    const size_t prefill_ws_bytes = cuda::PrefillAttentionWorkspaceBytes(nq_max, H, d, 16);
    float* d_prefill_ws = static_cast<float*>(mem(prefill_ws_bytes));
    float* d_shared_scores = static_cast<float*>(mem(static_cast<size_t>(nq_max) * H * cache->n_blocks * 4));
    // Chunk scores of nq queries (d_q) in chunk c against layer l's summaries.
    const auto score_params = [&](int32_t nq, int64_t l, int32_t c, float* out, cudaStream_t stream) {
      cuda::ChunkScoreParams sp;
      sp.d_q = d_q;
      sp.n_queries = nq;
      sp.n_heads = static_cast<int32_t>(H);
      sp.n_kv_heads = static_cast<int32_t>(G);
      sp.head_dim = static_cast<int32_t>(d);
      sp.summaries = cache->sums[l];
      sp.kind = kind;
      sp.d_block_table = cache->d_table;
      sp.n_chunks = c + 1;
      sp.d_scores = out;
      sp.stream = stream;
      return sp;
    };

    std::printf("## Decode per token, all %lld layers, KV %s\n\n", (long long)layers, DTypeName(dtype));
    std::printf("Query at position L-1 (its chunk full). Per layer: `longheads` = ScoreChunks + SelectChunks + "
                "DecodeAttention (+ combine); `full` = DecodeAttention over chunks 0..c. Bytes = K and V of every "
                "key attended (per query head) + the summaries scored. Median of %d tokens; first columns: kernels "
                "launched one by one on the default stream; `graph`: the same token captured once as a CUDA graph "
                "and replayed (launch overhead removed).\n\n", tokens);
    std::printf("| context | policy | us/token | keys/head | MB read/token | GB/s | of read bw | vs first | graph us/token | graph GB/s | graph of read bw | graph vs first |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    std::vector<double> first_us(2, 0.0), first_graph_us(2, 0.0);
    cudaStream_t capture_stream = nullptr;
    CHECK_CUDA(cudaStreamCreateWithFlags(&capture_stream, cudaStreamNonBlocking));
    cudaStream_t stream = nullptr;
    for (int64_t L : contexts) {
      const int32_t c = static_cast<int32_t>((L - 1) / w);
      const int32_t pos = static_cast<int32_t>(L - 1);
      CHECK_CUDA(cudaMemcpy(d_pos, &pos, 4, cudaMemcpyHostToDevice));
      for (int pi = 0; pi < 2; ++pi) {
        const bool lh = pi == 1;
        const cuda::SlotPolicy policy = lh ? cuda::SlotPolicy::kLongHeads : cuda::SlotPolicy::kFull;
        const int32_t len = cuda::SlotListLength(policy, slots, c);
        const bool scored = lh && c >= slots;
        auto token = [&] {
          for (int64_t l = 0; l < layers; ++l) {
            if (scored) {
              CHECK_OK(cuda::ScoreChunks(score_params(1, l, c, d_scores, stream)));
            }
            cuda::SelectChunksParams sel;
            sel.stream = stream;
            sel.policy = policy;
            sel.slots = slots;
            sel.c = c;
            sel.n_queries = 1;
            sel.n_heads = static_cast<int32_t>(H);
            sel.d_scores = d_scores;
            sel.d_block_table = cache->d_table;
            sel.d_chunks = d_chunks;
            sel.d_blocks = d_blocks;
            if (lh || l == 0) CHECK_OK(cuda::SelectChunks(sel));  // full: the same lists every layer
            cuda::DecodeAttentionParams ap;
            ap.d_q_local = d_q;
            ap.d_positions = d_pos;
            ap.d_blocks = d_blocks;
            ap.list_len = len;
            ap.n_queries = 1;
            ap.n_heads = static_cast<int32_t>(H);
            ap.kv = cache->Layer(l);
            ap.rope = rope.get();
            ap.scale = 1.0f / std::sqrt(static_cast<float>(d));
            ap.d_out = d_out;
            ap.d_workspace = d_ws;
            ap.workspace_bytes = ws_bytes;
            ap.stream = stream;
            CHECK_OK(cuda::DecodeAttention(ap));
          }
        };
        stream = nullptr;
        const double ms = TimeMs(tokens, token);
        stream = capture_stream;
        const double graph_ms = GraphTimeMs(tokens, capture_stream, token);
        stream = nullptr;
        const int64_t keys = std::min<int64_t>(L, static_cast<int64_t>(len) * w);
        const double bytes = static_cast<double>(layers) *
                             (H * keys * d * 2 * eb + (scored ? (c - 2) * SummaryBytesPerChunk(kind, H, G, d) : 0));
        const double gbs = bytes / (ms * 1e-3) / 1e9;
        if (first_us[pi] == 0.0) first_us[pi] = ms * 1e3;
        if (first_graph_us[pi] == 0.0) first_graph_us[pi] = graph_ms * 1e3;
        const double graph_gbs = bytes / (graph_ms * 1e-3) / 1e9;
        std::printf("| %lld | %s | %.1f | %lld | %.2f | %.0f | %.0f%% | %.2fx | %.1f | %.0f | %.0f%% | %.2fx |\n",
                    (long long)L, lh ? "longheads" : "full", ms * 1e3, (long long)keys, bytes / 1e6, gbs,
                    100 * gbs * 1e9 / read_bw, ms * 1e3 / first_us[pi], graph_ms * 1e3, graph_gbs,
                    100 * graph_gbs * 1e9 / read_bw, graph_ms * 1e3 / first_graph_us[pi]);
      }
    }

    // 4. Batched longheads attention: B sequences, each head its own random
    // slots-1 earlier blocks + its own; attention kernels only.
    {
      const int32_t len = slots;
      std::mt19937_64 rng(5);
      std::vector<int32_t> lists(static_cast<size_t>(B) * H * len);
      std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(cache->n_blocks) - 1);
      for (int32_t& b : lists) b = pick(rng);
      CHECK_CUDA(cudaMemcpy(d_blocks, lists.data(), lists.size() * 4, cudaMemcpyHostToDevice));
      std::vector<int32_t> pos(B, static_cast<int32_t>(max_context - 1));
      CHECK_CUDA(cudaMemcpy(d_pos, pos.data(), B * 4, cudaMemcpyHostToDevice));
      const double ms = TimeMs(tokens, [&] {
        for (int64_t l = 0; l < layers; ++l) {
          cuda::DecodeAttentionParams ap;
          ap.d_q_local = d_q;
          ap.d_positions = d_pos;
          ap.d_blocks = d_blocks;
          ap.list_len = len;
          ap.n_queries = B;
          ap.n_heads = static_cast<int32_t>(H);
          ap.kv = cache->Layer(l);
          ap.rope = rope.get();
          ap.scale = 1.0f / std::sqrt(static_cast<float>(d));
          ap.d_out = d_out;
          ap.d_workspace = d_ws;
          ap.workspace_bytes = ws_bytes;
          CHECK_OK(cuda::DecodeAttention(ap));
        }
      });
      const double bytes = static_cast<double>(layers) * B * H * len * w * d * 2 * eb;
      const double gbs = bytes / (ms * 1e-3) / 1e9;
      std::printf("\nBatched longheads decode attention (KV %s): %d sequences x %lld heads x %d slots x %lld keys, "
                  "%lld layers: %.1f us per step, %.1f MB read, **%.0f GB/s = %.0f%% of the read bandwidth** "
                  "(random blocks of a %lld-token cache; repeats of a block within a step may hit L2).\n\n",
                  DTypeName(dtype), B, (long long)H, len, (long long)w, (long long)layers, ms * 1e3, bytes / 1e6, gbs,
                  100 * gbs * 1e9 / read_bw, (long long)max_context);
    }

    // 5. Prefill of one chunk: per-token selection, one list per chunk, or full.
    std::printf("Prefill of %d queries (one chunk, the last of the context), all layers: `longheads` per-token "
                "selection (ScoreChunks + SelectChunks + PrefillAttention over each query's own list), "
                "`longheads_chunk` one list for the chunk's queries (the same kernels; the lists come from one "
                "query's scores, as after summing over queries), `full` (PrefillAttention over chunks 0..c). "
                "Kernel: %s for KV %s. Useful attention FLOPs = 4·d per (query, head, key attended); per-token "
                "lists also pay for the union of a tile's lists.\n\n",
                absl::GetFlag(FLAGS_prefill_queries),
                cuda::PrefillUsesTensorCores(cache->Layer(0)) ? "tensor cores (mma.sync, FP32 accumulation)"
                                                              : "FP32 SIMT",
                DTypeName(dtype));
    // Both tensor-core shapes (PrefillAttentionParams::warp_rows) where the
    // head size has both.
    const bool both_shapes = cuda::PrefillUsesTensorCores(cache->Layer(0)) && d == 64;
    std::printf("| context | policy | ms/chunk | us/token | attention TFLOP/s | PrefillAttention alone ms | "
                "alone TFLOP/s | alone, 16 rows per warp ms | alone, 32 rows per warp ms |\n"
                "|---|---|---|---|---|---|---|---|---|\n");
    for (int64_t L : contexts) {
      const int32_t nq = static_cast<int32_t>(std::min<int64_t>(absl::GetFlag(FLAGS_prefill_queries), w));
      const int32_t c = static_cast<int32_t>((L - 1) / w);
      const int64_t pos0 = static_cast<int64_t>(c) * w;
      for (int pi = 0; pi < 3; ++pi) {
        const bool lh = pi >= 1, shared = pi == 2;
        const cuda::SlotPolicy policy = lh ? cuda::SlotPolicy::kLongHeads : cuda::SlotPolicy::kFull;
        const int32_t len = cuda::SlotListLength(policy, slots, c);
        const bool scored = lh && c >= slots;
        if (shared && scored) {  // every query gets query 0's scores
          CHECK_OK(cuda::ScoreChunks(score_params(1, 0, c, d_shared_scores, nullptr)));
          const size_t row = static_cast<size_t>(H) * (c + 1) * 4;
          for (int32_t i = 1; i < nq; ++i) {
            CHECK_CUDA(cudaMemcpy(reinterpret_cast<char*>(d_shared_scores) + i * row, d_shared_scores, row,
                                  cudaMemcpyDeviceToDevice));
          }
        }
        const auto attend = [&](int64_t l, int32_t warp_rows = 0) {
          cuda::PrefillAttentionParams pp;
          pp.warp_rows = warp_rows;
          pp.d_q_local = d_q;
          pp.pos0 = pos0;
          pp.n_queries = nq;
          pp.n_heads = static_cast<int32_t>(H);
          pp.d_chunks = d_chunks;
          pp.list_stride = len;
          pp.d_block_table = cache->d_table;
          pp.kv = cache->Layer(l);
          pp.rope = rope.get();
          pp.scale = 1.0f / std::sqrt(static_cast<float>(d));
          pp.d_out = d_out;
          pp.d_workspace = d_prefill_ws;
          pp.workspace_bytes = prefill_ws_bytes;
          pp.max_splits = 16;
          CHECK_OK(cuda::PrefillAttention(pp));
        };
        const double ms = TimeMs(std::max(3, tokens / 4), [&] {
          for (int64_t l = 0; l < layers; ++l) {
            if (scored) {
              CHECK_OK(cuda::ScoreChunks(score_params(nq, l, c, d_scores, nullptr)));
            }
            cuda::SelectChunksParams sel;
            sel.policy = policy;
            sel.slots = slots;
            sel.c = c;
            sel.n_queries = nq;
            sel.n_heads = static_cast<int32_t>(H);
            sel.d_scores = shared ? d_shared_scores : d_scores;
            sel.d_block_table = cache->d_table;
            sel.d_chunks = d_chunks;
            sel.d_blocks = nullptr;
            CHECK_OK(cuda::SelectChunks(sel));
            attend(l);
          }
        });
        // The attention alone, over the lists the last layer selected.
        const double attn_ms = TimeMs(std::max(3, tokens / 4), [&] {
          for (int64_t l = 0; l < layers; ++l) attend(l);
        });
        double shape_ms[2] = {0.0, 0.0};
        for (int k = 0; k < 2 && both_shapes; ++k) {
          shape_ms[k] = TimeMs(std::max(3, tokens / 4), [&] {
            for (int64_t l = 0; l < layers; ++l) attend(l, 16 * (k + 1));
          });
        }
        // Keys read per query: (len-1) full chunks + its own prefix.
        double key_heads = 0;
        for (int32_t i = 0; i < nq; ++i) key_heads += static_cast<double>(len - 1) * w + i + 1;
        const double flops = 4.0 * d * key_heads * H * layers;
        std::printf("| %lld | %s | %.2f | %.1f | %.1f | %.2f | %.1f | %.2f | %.2f |\n", (long long)L,
                    shared ? "longheads_chunk" : lh ? "longheads" : "full", ms, ms * 1e3 / nq,
                    flops / (ms * 1e-3) / 1e12, attn_ms, flops / (attn_ms * 1e-3) / 1e12, shape_ms[0], shape_ms[1]);
      }
    }
    std::printf("\n");
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  return 0;
}

}  // namespace
}  // namespace hr::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return hr::bench::Run();
}
