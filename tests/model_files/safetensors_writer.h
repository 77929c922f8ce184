// Test helper: builds safetensors files (valid or deliberately broken) and
// small LLaMA checkpoints as Hugging Face model directories.
//
// Thread-safety: plain functions, no shared state.
#ifndef HEADROOM_TESTS_MODEL_FILES_SAFETENSORS_WRITER_H_
#define HEADROOM_TESTS_MODEL_FILES_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/model/config.h"

namespace hr::testing {

struct StTensor {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", or anything (for error tests)
  std::vector<int64_t> shape;  // PyTorch order
  std::string data;            // raw bytes
};

// A safetensors file: u64 header length, JSON header (padded with spaces to
// a multiple of 8 bytes, as the reference writer does), data in order.
std::string BuildSafetensors(const std::vector<StTensor>& tensors);

// A safetensors file with the given header text and data bytes verbatim.
std::string BuildSafetensorsRaw(const std::string& header_json, const std::string& data);

struct HfLlamaOptions {
  std::string dtype = "F32";   // F32, F16 or BF16 for matrices; norms always F32
  bool tied = false;           // tie_word_embeddings: lm_head.weight omitted
  int shards = 1;              // > 1: model-0000N-of-0000M.safetensors + index
  std::string skip_tensor;     // omit this tensor
  std::string reshape_tensor;  // write this tensor with a wrong shape
  bool write_config = true;
  std::string architecture = "LlamaForCausalLM";
};

// Writes config.json and the weights of a LLaMA with deterministic
// pseudo-random weights into `dir` (which must exist).
absl::Status WriteHfLlamaDir(const std::string& dir, const ModelConfig& config, uint64_t seed,
                             const HfLlamaOptions& options = {});

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_MODEL_FILES_SAFETENSORS_WRITER_H_
