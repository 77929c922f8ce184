// LongHeads at long contexts (design.md §3, §7): per-token prefill and decode
// time of a randomly initialised ~100M-parameter LLaMA over the paged KV cache,
// for the `full` policy and for `longheads`, at contexts up to 128K, with the
// KV pool's size and the process's peak RSS, reported against this machine's
// read bandwidth and SGEMM rate measured in the same run.
//
//   build-bench/bench/longctx_bench [--contexts 1024,4096] [--kv_dtype f16] > out.md
//
// Method, per policy, one at a time (everything freed before the next, so only
// one 128K cache is ever resident), at each context L in ascending order:
//   1. fill: PagedSequence::AppendSyntheticForBenchmark writes random
//      K/V/queries for every layer through the real storage and summary code
//      up to L (timed: it shows the summary-building cost). By default one
//      sequence grows through the contexts (each fill continues from the last
//      measurement, so the 128K fill is paid once per policy); --nogrow gives
//      a fresh pool and sequence per (L, policy), filled from zero;
//   2. prefill: ONE chunk-aligned LlamaModel::Forward of --prefill_tokens real
//      tokens at context L; its wall time / tokens is the per-token prefill
//      cost at L (total prefill time is the integral of it over L);
//   3. decode: --decode_steps single-token Forward steps (fewer when they take
//      longer than --decode_budget_s, never fewer than --min_decode_steps);
//      the mean is the per-token decode cost at L. The first step after the
//      prefill opens a fresh KV block (first touch of its pages): it is
//      timed on its own and left out of the mean. Each step alternates with
//      one step of a second sequence of the same policy held at
//      --decode_reference_context tokens (4K), so the 128K / 4K decode ratio
//      can also be read from steps taken in the same seconds, whatever the
//      machine did in the minutes between the 4K and the 128K rows.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/bench_model.h"
#include "bench/machine_limits.h"
#include "kernels/cpu/gemm_small_m.h"
#include "kernels/cpu/parallel.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_sequence.h"
#include "server/model/llama_model.h"
#include "server/model/weights.h"

ABSL_FLAG(std::string, contexts, "1024,4096,16384,65536,131072",
          "comma-separated context lengths (multiples of --chunk_size)");
ABSL_FLAG(std::string, policies, "full,longheads,longheads_chunk",
          "comma-separated: full, longheads (per-token prefill selection), longheads_chunk "
          "(per-chunk prefill selection, the fast mode)");
ABSL_FLAG(std::string, kv_dtype, "f32", "KV cache dtype: f32, f16 or bf16");
ABSL_FLAG(int32_t, chunk_size, 256, "tokens per chunk (= KV block)");
ABSL_FLAG(int32_t, atten_length, 2048, "longheads window per head (tokens)");
ABSL_FLAG(std::string, summary, "bound", "longheads chunk summary: bound, longheads or mean");
ABSL_FLAG(int64_t, prefill_tokens, 2048,
          "tokens of the timed prefill call (a multiple of --chunk_size; 2048 = the "
          "server's --prefill_step_tokens default)");
ABSL_FLAG(int64_t, decode_steps, 16, "decode steps timed after the prefill call");
ABSL_FLAG(int64_t, min_decode_steps, 2, "decode steps timed even past --decode_budget_s");
ABSL_FLAG(bool, log_steps, false, "print every timed decode step's wall time to stderr");
ABSL_FLAG(int64_t, decode_reference_context, 4096,
          "context of the reference sequence whose decode steps alternate with each row's "
          "(0: none)");
ABSL_FLAG(double, decode_budget_s, 8.0,
          "stop timing decode steps once they have taken this long (>= --min_decode_steps)");
ABSL_FLAG(bool, grow, true,
          "grow one sequence per policy through the contexts (each fill continues the last); "
          "false: a fresh pool and sequence per (context, policy), filled from zero");
ABSL_FLAG(int32_t, repeats, 3, "best-of repeats for the machine-limit probes");
ABSL_FLAG(uint64_t, seed, 1, "seed of the weights, the synthetic K/V and the tokens");

namespace hr {
namespace {

using bench::NowSeconds;

struct PolicySpec {
  std::string name;
  LongContextParams params;
};

struct Row {
  int64_t context = 0;
  std::string policy;
  int64_t context_actual = 0;     // tokens stored when the prefill call started
  double fill_s = 0;               // synthetic fill time up to this context
  double fill_us_per_token = 0;
  double prefill_s_per_token = 0;
  double decode_s_per_token = 0;  // mean over the steps
  double decode_min_s = 0;        // fastest step (less sensitive to other load)
  double first_decode_s = 0;      // the step after the prefill (opens a fresh KV block)
  int64_t decode_steps = 0;
  double ref_decode_s_per_token = 0;  // the reference sequence's steps, interleaved (0: none)
  double ref_decode_min_s = 0;
  int64_t pool_bytes = 0;
  int64_t peak_rss_bytes = 0;
  // Work counters (PagedSequenceStats deltas).
  double prefill_keys_per_qh = 0;  // keys read per (query, head) in the prefill call
  double decode_keys_per_qh = 0;   // keys read per (query, head) per decode step
  double decode_scores_per_qh = 0; // chunk scores per (query, head) per decode step
  double prefill_flops = 0;        // per token: weights + attention
  double decode_bytes = 0;         // per step: weights + K/V read + summaries scored
};

int64_t ReadProcStatusKb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::atoll(line.c_str() + prefix.size());
  }
  return -1;
}

// Resets the kernel's peak-RSS mark (VmHWM) so each run reports its own peak.
bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// Peak RSS since the last reset (VmHWM), else since the process started.
int64_t PeakRssBytes() {
  const int64_t hwm = ReadProcStatusKb("VmHWM");
  if (hwm >= 0) return hwm * 1024;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

int64_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) return std::atoll(line.c_str() + 13) * 1024;
  }
  return -1;
}

bool ParseKvDType(const std::string& s, KvDType* out, int64_t* bytes) {
  if (s == "f32") *out = KvDType::kF32, *bytes = 4;
  else if (s == "f16") *out = KvDType::kF16, *bytes = 2;
  else if (s == "bf16") *out = KvDType::kBF16, *bytes = 2;
  else return false;
  return true;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

void Die(const std::string& msg) {
  std::fprintf(stderr, "longctx_bench: %s\n", msg.c_str());
  std::exit(1);
}

// Total time to prefill L tokens, from per-token costs measured at contexts
// xs (ascending): piecewise-linear between points, constant below the first.
double IntegratePrefill(const std::vector<int64_t>& xs, const std::vector<double>& ys, int64_t L) {
  double t = ys[0] * static_cast<double>(std::min(L, xs[0]));
  for (size_t i = 1; i < xs.size() && xs[i - 1] < L; ++i) {
    const double x1 = static_cast<double>(std::min(L, xs[i]));
    const double x0 = static_cast<double>(xs[i - 1]);
    const double y1 = ys[i - 1] + (ys[i] - ys[i - 1]) * (x1 - x0) / (xs[i] - x0);
    t += 0.5 * (ys[i - 1] + y1) * (x1 - x0);
  }
  return t;
}

class Bench {
 public:
  Bench(LlamaModel& model, KvDType dtype, int64_t kv_elem_bytes, double weight_bytes,
        double weight_flops_per_token)
      : model_(model),
        dtype_(dtype),
        kv_elem_bytes_(kv_elem_bytes),
        weight_bytes_(weight_bytes),
        weight_flops_per_token_(weight_flops_per_token) {}

  KvGeometry Geometry() const {
    const ModelConfig& c = model_.config();
    return {c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim};
  }

  // Pool bytes a run at context L needs.
  int64_t PoolBudget(int64_t L, int32_t chunk_size, int64_t extra_tokens) const {
    BlockPool probe(Geometry(), dtype_, 0);
    const int64_t blocks = (L + extra_tokens + chunk_size - 1) / chunk_size + 1;
    return blocks * probe.BlockBytes(chunk_size);
  }

  // Runs one policy at every context, in ascending order, calling emit(row)
  // after each. grow: one pool and sequence grown through the contexts (each
  // context is filled from where the previous one's measurement left it);
  // else a fresh pool and sequence per context. Either way everything is
  // freed before returning, so one policy's cache is resident at a time.
  void Run(const PolicySpec& spec, const std::vector<int64_t>& contexts, bool grow,
           int64_t prefill_tokens, int64_t max_steps, int64_t min_steps, double decode_budget_s,
           int64_t ref_context, uint64_t seed, const std::function<void(const Row&)>& emit) {
    const ModelConfig& c = model_.config();
    const int32_t w = spec.params.chunk_size;
    const int64_t extra = prefill_tokens + max_steps;
    std::unique_ptr<BlockPool> pool;
    std::unique_ptr<PagedSequence> seq;
    double fill_total_s = 0;
    int64_t synthetic_tokens = 0;
    std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
    std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(c.vocab_size - 1));
    // The reference sequence (its own small pool), filled once.
    std::unique_ptr<BlockPool> ref_pool;
    std::unique_ptr<PagedSequence> ref_seq;
    if (ref_context > 0) {
      const int64_t ref_extra = max_steps * static_cast<int64_t>(contexts.size());
      ref_pool = std::make_unique<BlockPool>(Geometry(), dtype_, PoolBudget(ref_context, w, ref_extra));
      absl::StatusOr<std::unique_ptr<PagedSequence>> created =
          PagedSequence::Create(c, spec.params, ref_pool.get());
      if (!created.ok()) Die(std::string(created.status().message()));
      ref_seq = *std::move(created);
      if (!ref_seq->AppendSyntheticForBenchmark(ref_context, seed ^ 0x5eedull).ok()) {
        Die("reference fill failed");
      }
    }
    for (size_t ci = 0; ci < contexts.size(); ++ci) {
      const int64_t L = contexts[ci];
      ResetPeakRss();
      if (!grow || seq == nullptr) {
        seq.reset();
        pool.reset();
        // Grow mode: room for every context's measurement tokens too.
        const int64_t budget = grow ? PoolBudget(contexts.back(), w, extra * contexts.size())
                                    : PoolBudget(L, w, extra);
        pool = std::make_unique<BlockPool>(Geometry(), dtype_, budget);
        absl::StatusOr<std::unique_ptr<PagedSequence>> created =
            PagedSequence::Create(c, spec.params, pool.get());
        if (!created.ok()) Die(std::string(created.status().message()));
        seq = *std::move(created);
        fill_total_s = 0;
        synthetic_tokens = 0;
      }
      Row row;
      row.context = L;
      row.policy = spec.name;

      // 1. Fill up to L (the previous measurement may have gone past it).
      const int64_t to_fill = std::max<int64_t>(0, L - seq->length());
      double t0 = NowSeconds();
      if (to_fill > 0 && !seq->AppendSyntheticForBenchmark(to_fill, seed + ci).ok()) {
        Die("synthetic fill failed");
      }
      fill_total_s += NowSeconds() - t0;
      synthetic_tokens += to_fill;
      row.context_actual = seq->length();
      row.fill_s = fill_total_s;
      row.fill_us_per_token = synthetic_tokens > 0 ? 1e6 * fill_total_s / synthetic_tokens : 0;

      // 2. One prefill call of real tokens.
      std::vector<int32_t> prompt(prefill_tokens), next(1);
      for (int32_t& t : prompt) t = token(rng);
      std::vector<float> logits;
      const PagedSequenceStats s0 = seq->stats();
      BatchEntry entry{seq.get(), prompt, false};
      t0 = NowSeconds();
      if (!model_.Forward({&entry, 1}, &logits).ok()) Die("prefill Forward failed");
      row.prefill_s_per_token = (NowSeconds() - t0) / prefill_tokens;
      const PagedSequenceStats s1 = seq->stats();

      // 3. Decode steps, each followed by one of the reference sequence. The
      //    prefill ends on a chunk boundary, so the first step opens a fresh
      //    KV block: its first touch makes the kernel zero the block's pages
      //    (19 MB here), which a serving pool pays once per block it grows
      //    by (recycled blocks are already resident). That step is timed on
      //    its own (`first step ms`) and left out of the mean.
      entry.tokens = next;
      std::vector<int32_t> ref_next(1);
      BatchEntry ref_entry{ref_seq.get(), ref_next, false};
      // One decode step of `e` with a random token in `*id`; its wall time.
      auto step = [&](BatchEntry& e, int32_t* id) {
        *id = token(rng);
        rusage ru0{};
        getrusage(RUSAGE_SELF, &ru0);
        const double start = NowSeconds();
        if (!model_.Forward({&e, 1}, &logits).ok()) Die("decode Forward failed");
        const double dt = NowSeconds() - start;
        if (absl::GetFlag(FLAGS_log_steps)) {
          rusage ru1{};
          getrusage(RUSAGE_SELF, &ru1);
          std::fprintf(stderr, "%s L=%lld %s step %.1f ms, %ld minor faults\n", spec.name.c_str(),
                       static_cast<long long>(L), &e == &entry ? "decode" : "reference", dt * 1e3,
                       ru1.ru_minflt - ru0.ru_minflt);
        }
        return dt;
      };
      row.first_decode_s = step(entry, &next[0]);
      if (ref_seq != nullptr && ref_seq->length() % spec.params.chunk_size == 0) {
        step(ref_entry, &ref_next[0]);  // the reference's block opening, untimed
      }
      const PagedSequenceStats s1d = seq->stats();
      struct StepTimes {
        double sum = 0, min = 1e30;
        void Add(double dt) {
          sum += dt;
          min = std::min(min, dt);
        }
      } decode, ref;
      int64_t steps = 0;
      while (steps < max_steps && (steps < min_steps || decode.sum < decode_budget_s)) {
        decode.Add(step(entry, &next[0]));
        ++steps;
        if (ref_seq != nullptr) ref.Add(step(ref_entry, &ref_next[0]));
      }
      if (ref_seq != nullptr) {
        row.ref_decode_s_per_token = ref.sum / steps;
        row.ref_decode_min_s = ref.min;
      }
      const PagedSequenceStats s2 = seq->stats();
      row.decode_steps = steps;
      row.decode_s_per_token = decode.sum / steps;
      row.decode_min_s = decode.min;
      row.pool_bytes = pool->used_bytes();

      // Work actually done, from the sequence's counters (summed over layers:
      // divide by queries x heads x layers).
      const double qh_prefill = static_cast<double>(prefill_tokens) * c.n_heads * c.n_layers;
      const double qh_decode = static_cast<double>(steps) * c.n_heads * c.n_layers;
      row.prefill_keys_per_qh = (s1.keys_attended - s0.keys_attended) / qh_prefill;
      row.decode_keys_per_qh = (s2.keys_attended - s1d.keys_attended) / qh_decode;
      row.decode_scores_per_qh = (s2.chunks_scored - s1d.chunks_scored) / qh_decode;
      // Attention FLOPs: q·k and p·v, 2·head_dim each per key, every layer.
      row.prefill_flops = weight_flops_per_token_ +
                          4.0 * c.head_dim * row.prefill_keys_per_qh * c.n_heads * c.n_layers;
      // Decode bytes: the weights once, K and V of every key read, and the
      // summaries scored (bound: 2·head_dim floats; others head_dim). Counted
      // per query head: exact for MHA, an upper bound under GQA.
      const double summary_floats =
          spec.params.summary == SummaryKind::kBound ? 2.0 * c.head_dim : 1.0 * c.head_dim;
      row.decode_bytes =
          weight_bytes_ +
          c.n_layers * c.n_heads *
              (row.decode_keys_per_qh * 2.0 * c.head_dim * kv_elem_bytes_ +
               row.decode_scores_per_qh * summary_floats * sizeof(float));
      if (!grow || ci + 1 == contexts.size()) {
        seq.reset();
        pool.reset();
      }
      row.peak_rss_bytes = PeakRssBytes();
      emit(row);
    }
  }

 private:
  LlamaModel& model_;
  const KvDType dtype_;
  const int64_t kv_elem_bytes_;
  const double weight_bytes_;
  const double weight_flops_per_token_;
};

std::string Command(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

}  // namespace
}  // namespace hr

int main(int argc, char** argv) {
  const std::string command = hr::Command(argc, argv);
  absl::ParseCommandLine(argc, argv);
  using namespace hr;
  const double t_start = NowSeconds();

  absl::StatusOr<ModelConfig> config = bench::BenchModelConfig();
  if (!config.ok()) Die(std::string(config.status().message()));
  const ModelConfig& c = *config;

  KvDType dtype;
  int64_t kv_elem_bytes;
  const std::string dtype_name = absl::GetFlag(FLAGS_kv_dtype);
  if (!ParseKvDType(dtype_name, &dtype, &kv_elem_bytes)) Die("--kv_dtype must be f32, f16 or bf16");

  const int32_t w = absl::GetFlag(FLAGS_chunk_size);
  std::vector<int64_t> contexts;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_contexts), ',', absl::SkipEmpty())) {
    int64_t L;
    if (!absl::SimpleAtoi(part, &L) || L <= 0 || L % w != 0) {
      Die("--contexts: every context must be a positive multiple of --chunk_size");
    }
    contexts.push_back(L);
  }
  std::sort(contexts.begin(), contexts.end());
  contexts.erase(std::unique(contexts.begin(), contexts.end()), contexts.end());
  if (contexts.empty()) Die("--contexts is empty");

  absl::StatusOr<SummaryKind> summary = ParseSummaryKind(absl::GetFlag(FLAGS_summary));
  if (!summary.ok()) Die(std::string(summary.status().message()));
  std::vector<PolicySpec> policies;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_policies), ',', absl::SkipEmpty())) {
    PolicySpec spec;
    spec.name = std::string(part);
    spec.params.chunk_size = w;
    spec.params.atten_length = absl::GetFlag(FLAGS_atten_length);
    spec.params.summary = *summary;
    spec.params.gqa = GqaSelection::kPerQueryHead;
    if (part == "full") {
      spec.params.policy = AttentionPolicy::kFull;
    } else if (part == "longheads") {
      spec.params.policy = AttentionPolicy::kLongHeads;
      spec.params.prefill = PrefillSelection::kPerToken;
    } else if (part == "longheads_chunk") {
      spec.params.policy = AttentionPolicy::kLongHeads;
      spec.params.prefill = PrefillSelection::kPerChunk;
    } else {
      Die("--policies: unknown policy " + spec.name);
    }
    if (absl::Status s = spec.params.Validate(); !s.ok()) Die(std::string(s.message()));
    policies.push_back(spec);
  }
  if (policies.empty()) Die("--policies is empty");

  const int repeats = absl::GetFlag(FLAGS_repeats);
  const int64_t prefill_tokens = absl::GetFlag(FLAGS_prefill_tokens);
  const int64_t max_steps = absl::GetFlag(FLAGS_decode_steps);
  const int64_t min_steps = std::min(absl::GetFlag(FLAGS_min_decode_steps), max_steps);
  const double decode_budget = absl::GetFlag(FLAGS_decode_budget_s);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (prefill_tokens <= 0 || max_steps <= 0) Die("--prefill_tokens and --decode_steps must be > 0");
  const bool grow = absl::GetFlag(FLAGS_grow);
  for (size_t i = 1; grow && i < contexts.size(); ++i) {
    if (contexts[i] < contexts[i - 1] + prefill_tokens + max_steps) {
      Die("--grow: each context must exceed the previous one by at least --prefill_tokens + "
          "--decode_steps (or pass --nogrow)");
    }
  }

  // Machine limits first, before the weights take memory.
  const double gemm = bench::MeasureGemmFlops(512, 3072, 768, repeats + 2);
  LlamaWeights weights = RandomLlamaWeights(c, seed);
  const double layer_params = c.n_layers * (c.dim * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim +
                                            c.n_heads * c.head_dim * c.dim + 3.0 * c.dim * c.ffn_dim + 2.0 * c.dim);
  const double params = layer_params + 2.0 * c.vocab_size * c.dim + c.dim;
  const double read_params = layer_params + c.vocab_size * c.dim + c.dim;  // one embedding row
  const double weight_bytes = read_params * sizeof(float);
  LlamaModel model(weights);
  const double bw = bench::MeasureReadBandwidth(static_cast<size_t>(weight_bytes), repeats + 2);
  const double bw_1g = bench::MeasureReadBandwidth(size_t{1} << 30, repeats + 2);
  Bench bench(model, dtype, kv_elem_bytes, weight_bytes, 2.0 * read_params);

  // Does the largest run fit? (weights + pool + ~1 GiB of scratch)
  const int64_t max_pool =
      bench.PoolBudget(contexts.back(), w, (prefill_tokens + max_steps) * contexts.size());
  const int64_t available = MemAvailableBytes();
  if (available > 0 && max_pool + (int64_t{1} << 30) > available) {
    Die("the KV pool at context " + std::to_string(contexts.back()) + " needs " +
        std::to_string(max_pool >> 20) + " MiB but only " + std::to_string(available >> 20) +
        " MiB are available: use --kv_dtype f16 or smaller --contexts");
  }

  // Warm-up (scratch buffers, thread pool): one prefill chunk and one step.
  {
    BlockPool pool(bench.Geometry(), dtype, bench.PoolBudget(0, w, prefill_tokens + 1));
    auto seq = PagedSequence::Create(c, policies[0].params, &pool);
    if (!seq.ok()) Die(std::string(seq.status().message()));
    std::vector<int32_t> prompt(prefill_tokens, 1), one(1, 2);
    std::vector<float> logits;
    BatchEntry e{seq->get(), prompt, false};
    if (!model.Forward({&e, 1}, &logits).ok()) Die("warm-up failed");
    e.tokens = one;
    if (!model.Forward({&e, 1}, &logits).ok()) Die("warm-up failed");
  }

  std::printf("# Long-context prefill and decode (CPU, KV %s)\n\n", dtype_name.c_str());
  std::printf("Command: `%s`\n\n", command.c_str());
  std::printf("- CPU: %s; threads used: %d; small-m GEMM variant: %s\n",
              bench::CpuDescription().c_str(), cpu::NumThreads(), cpu::SmallMVariant());
  std::printf("- Model: random LLaMA, dim %ld, %ld layers, %ld heads (%ld KV), head_dim %ld, ffn %ld, "
              "vocab %ld: %.1f M parameters (%.0f MB F32)\n",
              c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab_size,
              params / 1e6, params * 4 / 1e6);
  std::printf("- Load average (1, 5, 15 min) when the measurements started: %s (the run uses every "
              "core; other load inflates the times, decode's many short parallel regions most)\n",
              LoadAverage().c_str());
  std::printf("- Machine limits measured in this run: read bandwidth %.2f GB/s over %.0f MB "
              "(%.2f GB/s over 1 GiB), all threads; SGEMM %.1f GFLOP/s (512x768 · 768x3072)\n",
              bw / 1e9, weight_bytes / 1e6, bw_1g / 1e9, gemm / 1e9);
  std::printf("- Paged KV: chunk_size %d, KV %s; longheads: atten_length %d (%d slots), summary %s, "
              "per-query-head selection; prefill selection per token (`longheads`) or per chunk "
              "(`longheads_chunk`)\n",
              w, dtype_name.c_str(), absl::GetFlag(FLAGS_atten_length),
              absl::GetFlag(FLAGS_atten_length) / w, absl::GetFlag(FLAGS_summary).c_str());
  if (grow) {
    std::printf("- Per policy, one pool and sequence grown through the contexts in ascending order "
                "(freed before the next policy): at each context L, synthetic K/V fill it up to L "
                "(`fill s`: cumulative time of the synthetic fills so far, storage + summaries of "
                "every layer; `fill us/token` = that / synthetic tokens), then ONE %ld-token "
                "prefill call of real tokens at context L (`prefill ms/token` = its wall time / "
                "%ld), then up to %ld single-token decode steps (at least %ld; fewer only once "
                "they exceed %.0f s: `steps`). The context holds the earlier contexts' measured "
                "real tokens too.\n",
                prefill_tokens, prefill_tokens, max_steps, min_steps, decode_budget);
  } else {
    std::printf("- Per (context L, policy), a fresh pool and sequence (freed before the next): "
                "synthetic K/V fill L tokens (`fill s`, storage + summaries of every layer), then "
                "ONE %ld-token prefill call of real tokens (`prefill ms/token` = its wall time / "
                "%ld), then up to %ld single-token decode steps (at least %ld; fewer only once "
                "they exceed %.0f s: `steps`)\n",
                prefill_tokens, prefill_tokens, max_steps, min_steps, decode_budget);
  }
  std::printf("- `first step ms`: the first decode step after the prefill, timed on its own and "
              "left out of the mean: the prefill ends on a chunk boundary, so that step opens a "
              "fresh KV block, whose first touch makes the kernel zero its pages (a pool pays "
              "this once per block it grows by; recycled blocks are resident). The reference "
              "sequence's block-opening step is untimed\n");
  std::printf("- `peak RSS MB`: the process's peak resident memory while measuring that row "
              "(VmHWM, reset before each; includes the %.0f MB of weights); `KV pool MB`: the "
              "pool's bytes in use after the row's decode steps\n\n",
              params * 4 / 1e6);

  std::printf("| context | policy | fill s | fill us/token | prefill ms/token | decode ms/token | "
              "decode min ms | steps | first step ms | KV pool MB | peak RSS MB |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  std::vector<Row> rows;
  for (const PolicySpec& spec : policies) {
    bench.Run(spec, contexts, grow, prefill_tokens, max_steps, min_steps, decode_budget,
              absl::GetFlag(FLAGS_decode_reference_context), seed,
              [&](const Row& r) {
                std::printf("| %ld | %s | %.1f | %.0f | %.2f | %.1f | %.1f | %ld | %.1f | %.0f | %.0f |\n",
                            r.context, r.policy.c_str(), r.fill_s, r.fill_us_per_token,
                            1e3 * r.prefill_s_per_token, 1e3 * r.decode_s_per_token,
                            1e3 * r.decode_min_s, r.decode_steps, 1e3 * r.first_decode_s,
                            r.pool_bytes / 1e6,
                            r.peak_rss_bytes / 1e6);
                std::fflush(stdout);
                rows.push_back(r);
              });
  }

  auto find = [&](const std::string& policy, int64_t L) -> const Row* {
    for (const Row& r : rows) {
      if (r.policy == policy && r.context == L) return &r;
    }
    return nullptr;
  };

  std::printf("\n## Against the machine's limits\n\n");
  std::printf("Decode bytes/step = weights read once (%.0f MB) + K and V of every key read + the "
              "chunk summaries scored; prefill FLOPs/token = 2 x weights read + 4 x head_dim per "
              "(key, head, layer) attended. Keys per query-head are the sequence's own counters.\n\n",
              weight_bytes / 1e6);
  std::printf("| context | policy | prefill keys/query-head | prefill GFLOP/s | of SGEMM | "
              "decode keys/query-head | decode chunks scored/query-head | decode GB/s | "
              "of bandwidth |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    const double pf = r.prefill_flops / r.prefill_s_per_token;
    const double dbw = r.decode_bytes / r.decode_s_per_token;
    std::printf("| %ld | %s | %.0f | %.1f | %.0f%% | %.0f | %.0f | %.2f | %.0f%% |\n", r.context,
                r.policy.c_str(), r.prefill_keys_per_qh, pf / 1e9, 100 * pf / gemm,
                r.decode_keys_per_qh, r.decode_scores_per_qh, dbw / 1e9, 100 * dbw / bw);
  }

  std::printf("\n## Ratios (same run)\n\n");
  const bool has_full = find("full", contexts[0]) != nullptr;
  for (const PolicySpec& spec : policies) {
    if (spec.name == "full" || !has_full) continue;
    std::printf("full / %s at each context (how much faster %s is):\n\n", spec.name.c_str(),
                spec.name.c_str());
    std::printf("| context | prefill full/%s | decode full/%s |\n|---|---|---|\n",
                spec.name.c_str(), spec.name.c_str());
    for (int64_t L : contexts) {
      const Row* f = find("full", L);
      const Row* l = find(spec.name, L);
      if (f == nullptr || l == nullptr) continue;
      std::printf("| %ld | %.2fx | %.2fx |\n", L, f->prefill_s_per_token / l->prefill_s_per_token,
                  f->decode_s_per_token / l->decode_s_per_token);
    }
    std::printf("\n");
  }

  // Decode 128K / 4K (target <= 1.5 for longheads), when both were measured.
  const int64_t kLo = 4096, kHi = 131072;
  for (const PolicySpec& spec : policies) {
    const Row* lo = find(spec.name, kLo);
    const Row* hi = find(spec.name, kHi);
    if (lo == nullptr || hi == nullptr) continue;
    const double ratio = hi->decode_s_per_token / lo->decode_s_per_token;
    const double ratio_min = hi->decode_min_s / lo->decode_min_s;
    const bool target = spec.params.policy == AttentionPolicy::kLongHeads;
    std::printf("- %s decode per token 128K / 4K: %.2fx mean (%.2fx fastest step)%s\n",
                spec.name.c_str(), ratio, ratio_min,
                target ? (ratio <= 1.5 ? " (target <= 1.5x, on the mean: met)"
                                       : " (target <= 1.5x, on the mean: NOT met)")
                       : " (reference)");
  }
  // Decode at the largest context against the reference sequence's steps
  // taken in the same seconds.
  for (const PolicySpec& spec : policies) {
    const Row* hi = find(spec.name, kHi);
    if (hi == nullptr || hi->ref_decode_s_per_token <= 0) continue;
    const double ratio = hi->decode_s_per_token / hi->ref_decode_s_per_token;
    const double ratio_min = hi->decode_min_s / hi->ref_decode_min_s;
    const bool target = spec.params.policy == AttentionPolicy::kLongHeads;
    std::printf("- %s decode per token 128K / %ld, steps interleaved (same seconds): %.2fx mean "
                "(%.2fx fastest step; %.1f vs %.1f ms)%s\n",
                spec.name.c_str(), absl::GetFlag(FLAGS_decode_reference_context), ratio, ratio_min,
                1e3 * hi->decode_s_per_token, 1e3 * hi->ref_decode_s_per_token,
                target ? (ratio <= 1.5 ? " (target <= 1.5x, on the mean: met)"
                                       : " (target <= 1.5x, on the mean: NOT met)")
                       : " (reference)");
  }

  // Implied total prefill time ratio between the two largest contexts.
  if (contexts.size() >= 2) {
    const int64_t L1 = contexts[contexts.size() - 2], L2 = contexts.back();
    for (const PolicySpec& spec : policies) {
      std::vector<int64_t> xs;
      std::vector<double> ys;
      for (int64_t L : contexts) {
        if (const Row* r = find(spec.name, L)) {
          xs.push_back(L);
          ys.push_back(r->prefill_s_per_token);
        }
      }
      if (xs.size() != contexts.size()) continue;
      const double t1 = IntegratePrefill(xs, ys, L1), t2 = IntegratePrefill(xs, ys, L2);
      const bool target = spec.params.policy == AttentionPolicy::kLongHeads && L1 == 65536 &&
                          L2 == 131072;
      std::printf("- %s implied total prefill T(%ld) / T(%ld): %.2fx (T(L) = integral of the "
                  "measured per-token prefill cost over 0..L, piecewise linear between measured "
                  "contexts, constant below the first; %.0f s vs %.0f s; linear = %.2fx)%s\n",
                  spec.name.c_str(), L2, L1, t2 / t1, t2, t1, static_cast<double>(L2) / L1,
                  target ? (t2 / t1 <= 2.2 ? " (target <= 2.2x: met)" : " (target <= 2.2x: NOT met)")
                         : "");
    }
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  std::printf("- Load average at the end: %s\n", LoadAverage().c_str());
  std::printf("- Process peak RSS over the whole run (getrusage ru_maxrss): %.0f MB; "
              "benchmark wall time %.0f s\n",
              u.ru_maxrss * 1024.0 / 1e6, NowSeconds() - t_start);
  std::printf("- Machine limits (same run): read bandwidth %.2f GB/s (%.2f GB/s over 1 GiB), "
              "SGEMM %.1f GFLOP/s; %s\n",
              bw / 1e9, bw_1g / 1e9, gemm / 1e9, bench::CpuDescription().c_str());
  return 0;
}
