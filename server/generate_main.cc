// headroom-generate: generates text from a model file on the CPU (flags and
// wiring only). The gRPC server comes with the server issue.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "kernels/cpu/parallel.h"
#include "server/engine/generator.h"
#include "server/common/status.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/engine/served_model.h"
#include "server/longctx/selection_dump.h"

ABSL_FLAG(std::string, model, "models/demo.gguf",
          "GGUF file, Hugging Face LLaMA directory, or SeqPE model directory");
ABSL_FLAG(std::string, prompt, "", "prompt text");
ABSL_FLAG(std::string, prompt_file, "", "read the prompt from this file instead");
ABSL_FLAG(int32_t, max_tokens, 128, "generated tokens at most");
ABSL_FLAG(float, temperature, 0.0f, "sampling temperature; 0 = greedy");
ABSL_FLAG(int32_t, top_k, 0, "keep the k most likely tokens; 0 = off");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling mass in (0, 1]; 1 = off");
ABSL_FLAG(float, min_p, 0.0f, "drop tokens below min_p x the top probability; 0 = off");
ABSL_FLAG(float, repetition_penalty, 1.0f, "penalty on tokens already seen; 1 = off");
ABSL_FLAG(uint64_t, seed, 0, "random seed (same seed, same tokens)");
ABSL_FLAG(std::vector<std::string>, stop, {}, "comma-separated stop strings");
ABSL_FLAG(bool, bos, true, "prepend the BOS token");
ABSL_FLAG(bool, print_ids, false, "print the generated token ids on stderr");
ABSL_FLAG(int32_t, threads, 0, "CPU threads (0 = all cores)");
ABSL_FLAG(std::string, policy, "longheads",
          "attention: contiguous (plain causal cache) | full | window | longheads (paged cache)");
ABSL_FLAG(int32_t, atten_length, 0,
          "attention window per head in tokens (0 = the model's trained context, at most 4096)");
ABSL_FLAG(int32_t, chunk_size, 0, "tokens per chunk / KV block (0 = atten_length / 8)");
ABSL_FLAG(std::string, summary, "bound", "chunk summary for longheads: longheads | bound | mean");
ABSL_FLAG(std::string, gqa_selection, "query_head", "select per query_head or per kv_head");
ABSL_FLAG(std::string, prefill_selection, "token", "prefill selection per token or per chunk");
ABSL_FLAG(std::string, kv_dtype, "f32", "KV cache storage: f32 | f16 | bf16");
ABSL_FLAG(int64_t, kv_cache_mb, 8192, "KV cache budget in MiB");
ABSL_FLAG(std::string, dump_selection, "",
          "write the chunks every layer and head selected for each generated token (JSON lines)");

namespace {

// Long-context parameters from the flags, with model-derived defaults.
absl::StatusOr<hr::LongContextParams> LongContextFromFlags(const hr::ModelConfig& config) {
  hr::LongContextParams p = hr::DefaultLongContextParams(config, absl::GetFlag(FLAGS_atten_length));
  auto policy = hr::ParsePolicy(absl::GetFlag(FLAGS_policy));
  if (!policy.ok()) return policy.status();
  p.policy = *policy;
  auto summary = hr::ParseSummaryKind(absl::GetFlag(FLAGS_summary));
  if (!summary.ok()) return summary.status();
  p.summary = *summary;
  auto gqa = hr::ParseGqaSelection(absl::GetFlag(FLAGS_gqa_selection));
  if (!gqa.ok()) return gqa.status();
  p.gqa = *gqa;
  auto prefill = hr::ParsePrefillSelection(absl::GetFlag(FLAGS_prefill_selection));
  if (!prefill.ok()) return prefill.status();
  p.prefill = *prefill;
  if (absl::GetFlag(FLAGS_chunk_size) != 0) p.chunk_size = absl::GetFlag(FLAGS_chunk_size);
  HR_RETURN_IF_ERROR(p.Validate());
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Generates text from a LLaMA-family or SeqPE model on the CPU.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) hr::cpu::SetNumThreads(absl::GetFlag(FLAGS_threads));

  auto loaded = hr::LoadServedModel(absl::GetFlag(FLAGS_model));
  if (!loaded.ok()) {
    std::cerr << "error: " << loaded.status().message() << "\n";
    return 1;
  }
  if (loaded->tokenizer == nullptr) {
    std::cerr << "error: " << absl::GetFlag(FLAGS_model) << " ships no tokenizer\n";
    return 1;
  }
  std::string prompt = absl::GetFlag(FLAGS_prompt);
  if (!absl::GetFlag(FLAGS_prompt_file).empty()) {
    std::ifstream in(absl::GetFlag(FLAGS_prompt_file), std::ios::binary);
    if (!in) {
      std::cerr << "error: cannot read " << absl::GetFlag(FLAGS_prompt_file) << "\n";
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    prompt = ss.str();
  }
  auto ids = loaded->tokenizer->Encode(prompt, absl::GetFlag(FLAGS_bos));
  if (!ids.ok()) {
    std::cerr << "error: prompt: " << ids.status().message() << "\n";
    return 1;
  }

  hr::GenerateOptions options;  // filled below
  options.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  options.sampling.temperature = absl::GetFlag(FLAGS_temperature);
  options.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  options.sampling.top_p = absl::GetFlag(FLAGS_top_p);
  options.sampling.min_p = absl::GetFlag(FLAGS_min_p);
  options.sampling.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  options.sampling.seed = absl::GetFlag(FLAGS_seed);
  options.stop_strings = absl::GetFlag(FLAGS_stop);

  const hr::ServedModel& served = *loaded->model;
  std::unique_ptr<hr::CausalLm> model = served.NewInstance();
  const hr::ModelConfig& config = served.config();
  std::unique_ptr<hr::BlockPool> pool;
  std::unique_ptr<hr::PagedKvSequence> paged;
  std::unique_ptr<hr::SelectionDump> dump;
  if (absl::GetFlag(FLAGS_policy) != "contiguous") {
    auto params = LongContextFromFlags(config);
    if (!params.ok()) {
      std::cerr << "error: " << params.status().message() << "\n";
      return 1;
    }
    const std::string kv = absl::GetFlag(FLAGS_kv_dtype);
    const hr::KvDType kv_dtype = kv == "f16" ? hr::KvDType::kF16 : kv == "bf16" ? hr::KvDType::kBF16 : hr::KvDType::kF32;
    if (kv != "f32" && kv != "f16" && kv != "bf16") {
      std::cerr << "error: --kv_dtype must be f32, f16 or bf16\n";
      return 1;
    }
    const absl::Status supported = served.CheckLongContext(
        *params, static_cast<int64_t>(ids->size()) + options.max_tokens);
    if (!supported.ok()) {
      std::cerr << "error: " << supported.message() << "\n";
      return 1;
    }
    pool = std::make_unique<hr::BlockPool>(served.kv_geometry(), kv_dtype,
                                           absl::GetFlag(FLAGS_kv_cache_mb) << 20);
    auto seq = served.NewSequence(*params, pool.get());
    if (!seq.ok()) {
      std::cerr << "error: " << seq.status().message() << "\n";
      return 1;
    }
    paged = std::move(*seq);
    if (!absl::GetFlag(FLAGS_dump_selection).empty()) {
      auto d = hr::SelectionDump::Open(absl::GetFlag(FLAGS_dump_selection),
                                       static_cast<int64_t>(ids->size()));
      if (!d.ok()) {
        std::cerr << "error: " << d.status().message() << "\n";
        return 1;
      }
      dump = std::move(*d);
      paged->set_observer(dump.get());
    }
    // Prefill in whole chunks so no buffer grows with the prompt.
    options.prefill_chunk_tokens = std::max(params->chunk_size, 512 / params->chunk_size * params->chunk_size);
    std::fprintf(stderr, "[attention: %s, chunk %d, window %d, summary %s, kv %s]\n",
                 std::string(hr::PolicyName(params->policy)).c_str(), params->chunk_size,
                 params->atten_length, std::string(hr::SummaryKindName(params->summary)).c_str(),
                 kv.c_str());
  }
  std::cout << prompt << std::flush;
  auto result = hr::Generate(*model, loaded->tokenizer.get(), *ids, options,
                             [](int32_t, std::string_view text) {
                               std::cout << text << std::flush;
                               return true;
                             },
                             paged.get());
  std::cout << "\n";
  if (!result.ok()) {
    std::cerr << "error: " << result.status().message() << "\n";
    return 1;
  }
  const double n_gen = static_cast<double>(result->tokens.size());
  std::fprintf(stderr,
               "[%zu prompt tokens in %.3f s (%.1f tok/s); %zu generated in %.3f s (%.1f tok/s); "
               "finish: %s]\n",
               ids->size(), result->prefill_seconds, ids->size() / result->prefill_seconds,
               result->tokens.size(), result->decode_seconds, n_gen / result->decode_seconds,
               std::string(hr::FinishReasonName(result->finish)).c_str());
  if (absl::GetFlag(FLAGS_print_ids)) {
    for (int32_t id : result->tokens) std::fprintf(stderr, "%d ", id);
    std::fprintf(stderr, "\n");
  }
  return 0;
}
