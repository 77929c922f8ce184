// headroom-generate: generates text from a model file on the CPU (flags and
// wiring only). The gRPC server comes with the server issue.
#include <cstdio>
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
#include "server/model/loader.h"

ABSL_FLAG(std::string, model, "../shared/models/stories260K.gguf",
          "GGUF file or Hugging Face model directory");
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

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Generates text from a LLaMA-family model on the CPU.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) hr::cpu::SetNumThreads(absl::GetFlag(FLAGS_threads));

  auto loaded = hr::LoadModel(absl::GetFlag(FLAGS_model));
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

  hr::GenerateOptions options;
  options.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  options.sampling.temperature = absl::GetFlag(FLAGS_temperature);
  options.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  options.sampling.top_p = absl::GetFlag(FLAGS_top_p);
  options.sampling.min_p = absl::GetFlag(FLAGS_min_p);
  options.sampling.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  options.sampling.seed = absl::GetFlag(FLAGS_seed);
  options.stop_strings = absl::GetFlag(FLAGS_stop);

  hr::LlamaModel model(loaded->weights);
  std::cout << prompt << std::flush;
  auto result = hr::Generate(model, loaded->tokenizer.get(), *ids, options,
                             [](int32_t, std::string_view text) {
                               std::cout << text << std::flush;
                               return true;
                             });
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
