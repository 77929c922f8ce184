// Driver for fuzz targets without libFuzzer (any compiler): runs
// LLVMFuzzerTestOneInput over every file under the paths given, and, with
// --mutations=N, over N deterministic mutations of each (byte flips,
// interesting 1/4/8-byte values, truncations), so a plain ctest run is a
// small fuzzing session too.
//
//   gguf_fuzz_replay [--mutations=N] [--seed=S] PATH...
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "server/common/splitmix64.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Rng = hr::SplitMix64;

// Runs the target on an exactly sized heap copy (so sanitizers see over-reads).
void Run(const std::vector<uint8_t>& bytes) {
  std::vector<uint8_t> copy(bytes);
  LLVMFuzzerTestOneInput(copy.empty() ? nullptr : copy.data(), copy.size());
}

void Mutate(std::vector<uint8_t>& b, Rng& rng, size_t hot_prefix) {
  static const uint64_t kInteresting[] = {0,          1,          0x7F,       0x80,
                                          0xFF,       0x7FFF,     0xFFFF,     0x7FFFFFFF,
                                          0xFFFFFFFF, 1ull << 32, 1ull << 40, 1ull << 62,
                                          ~0ull >> 1, ~0ull};
  const int edits = 1 + static_cast<int>(rng.Below(3));
  for (int e = 0; e < edits && !b.empty(); ++e) {
    // Mostly hit the header, where the structure is.
    const size_t limit = rng.Below(4) != 0 ? std::min(b.size(), hot_prefix) : b.size();
    const size_t at = rng.Below(limit);
    switch (rng.Below(5)) {
      case 0:
        b[at] ^= static_cast<uint8_t>(1u << rng.Below(8));
        break;
      case 1:
        b[at] = static_cast<uint8_t>(rng.Next());
        break;
      case 2:
      case 3: {
        const uint64_t v = kInteresting[rng.Below(std::size(kInteresting))];
        const size_t width = size_t{1} << rng.Below(4);  // 1, 2, 4, 8
        for (size_t i = 0; i < width && at + i < b.size(); ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
        break;
      }
      case 4:
        b.resize(rng.Below(b.size()));
        break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 0;
  uint64_t seed = 1;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--mutations=", 0) == 0) {
      mutations = std::strtol(arg.c_str() + 12, nullptr, 10);
    } else if (arg.rfind("--seed=", 0) == 0) {
      seed = std::strtoull(arg.c_str() + 7, nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else if (std::filesystem::is_regular_file(arg)) {
      files.push_back(arg);
    } else {
      std::fprintf(stderr, "replay: no such file or directory: %s\n", arg.c_str());
      return 2;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "replay: no input files\n");
    return 2;
  }
  long runs = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    std::ifstream in(files[f], std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Run(bytes);
    ++runs;
    Rng rng{seed * 1000003 + f};
    // Big files (real models): mutate the first 64 KiB most of the time.
    const size_t hot_prefix = std::min<size_t>(bytes.size(), 64 * 1024);
    for (long m = 0; m < mutations; ++m) {
      std::vector<uint8_t> mutated = bytes;
      Mutate(mutated, rng, hot_prefix);
      Run(mutated);
      ++runs;
    }
  }
  std::printf("replay: %zu files, %ld runs, no crash\n", files.size(), runs);
  return 0;
}
