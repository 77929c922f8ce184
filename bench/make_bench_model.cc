// make_bench_model: writes the benchmark model (bench_model.h shape flags,
// ~100M parameters by default) as a GGUF file the server loads like any
// other model: deterministic pseudo-random F32 weights and a synthetic
// vocabulary of the model's size, so serving benchmarks can run the real
// server binary on it.
//
//   build/bench/make_bench_model --out /tmp/bench100m.gguf
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "bench/bench_model.h"
#include "tests/model_files/gguf_writer.h"

ABSL_FLAG(std::string, out, "", "GGUF file to write");
ABSL_FLAG(uint64_t, seed, 1, "weight seed");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Writes the random benchmark LLaMA as GGUF.");
  absl::ParseCommandLine(argc, argv);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "--out is required\n");
    return 2;
  }
  auto config = hr::bench::BenchModelConfig();
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 2;
  }
  hr::testing::GgufWriter writer;
  hr::testing::LlamaGgufOptions options;
  options.with_tokenizer = true;
  hr::testing::AddLlamaGguf(writer, *config, absl::GetFlag(FLAGS_seed), options);
  const std::string bytes = writer.Build();
  std::ofstream file(out, std::ios::binary);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!file) {
    std::fprintf(stderr, "cannot write %s\n", out.c_str());
    return 1;
  }
  std::printf("wrote %s (%.1f MB)\n", out.c_str(), bytes.size() / 1e6);
  return 0;
}
