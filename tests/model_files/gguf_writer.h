// Test helper: builds GGUF files byte by byte, including deliberately broken
// ones, and small LLaMA models in GGUF form.
//
// Usage:
//   GgufWriter w;
//   w.AddString("general.architecture", "llama");
//   w.AddU32("llama.block_count", 2);
//   w.AddTensorF32("token_embd.weight", {dim, vocab}, values);
//   GgufLayout layout;
//   std::string bytes = w.Build(&layout);  // layout: where each field landed
//
// Dims are in ggml order (dims[0] = row length, i.e. {in, out} for a matrix).
// Thread-safety: none (a builder).
#ifndef HEADROOM_TESTS_MODEL_FILES_GGUF_WRITER_H_
#define HEADROOM_TESTS_MODEL_FILES_GGUF_WRITER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/model/config.h"
#include "server/model/dtype.h"

namespace hr::testing {

// GGUF metadata value types (gguf_type).
enum GgufValueType : uint32_t {
  kGgufU8 = 0,
  kGgufI8 = 1,
  kGgufU16 = 2,
  kGgufI16 = 3,
  kGgufU32 = 4,
  kGgufI32 = 5,
  kGgufF32 = 6,
  kGgufBool = 7,
  kGgufString = 8,
  kGgufArray = 9,
  kGgufU64 = 10,
  kGgufI64 = 11,
  kGgufF64 = 12,
};

// ggml tensor types the parser supports.
inline constexpr uint32_t kGgmlF32 = 0;
inline constexpr uint32_t kGgmlF16 = 1;
inline constexpr uint32_t kGgmlQ8_0 = 8;
inline constexpr uint32_t kGgmlBF16 = 30;
uint32_t GgmlTypeOf(DType dtype);

// Little-endian encoders (append to `out`).
void PutU32(std::string& out, uint32_t v);
void PutU64(std::string& out, uint64_t v);
void PutF32(std::string& out, float v);
void PutGgufString(std::string& out, std::string_view s);

// Encodes F32 values as `dtype` (F16/BF16 round to nearest even; Q8_0 with
// the ggml reference quantizer; REQUIRES: size % 32 == 0 for Q8_0).
std::string EncodeTensorData(DType dtype, const std::vector<float>& values);

// Where the fields of a built file are (absolute byte offsets).
struct GgufLayout {
  size_t n_tensors_offset = 8;
  size_t n_kv_offset = 16;
  std::vector<size_t> kv_offsets;          // start of each key (its u64 length)
  std::vector<size_t> kv_value_offsets;    // start of each value (after the u32 type)
  std::vector<size_t> tensor_info_offsets; // start of each tensor name (its u64 length)
  std::vector<size_t> tensor_dims_offsets; // the u32 n_dims of each tensor
  std::vector<size_t> tensor_type_offsets; // the u32 ggml type of each tensor
  std::vector<size_t> tensor_offset_offsets;  // the u64 data offset of each tensor
  size_t header_end = 0;
  size_t data_start = 0;
  std::vector<size_t> tensor_data_offsets;  // absolute start of each tensor's data
};

class GgufWriter {
 public:
  void set_version(uint32_t version) { version_ = version; }
  // Alignment used for the layout; written as general.alignment (u32) when
  // AddAlignmentKey() is called.
  void set_alignment(uint64_t alignment) { alignment_ = alignment; }
  void AddAlignmentKey() { AddU32("general.alignment", static_cast<uint32_t>(alignment_)); }

  // Metadata. `encoded` is the value's bytes exactly as they follow the type.
  void AddRaw(std::string key, uint32_t type, std::string encoded);
  void AddU8(std::string key, uint8_t v);
  void AddU32(std::string key, uint32_t v);
  void AddI32(std::string key, int32_t v);
  void AddU64(std::string key, uint64_t v);
  void AddI64(std::string key, int64_t v);
  void AddF32(std::string key, float v);
  void AddF64(std::string key, double v);
  void AddBool(std::string key, bool v);
  void AddString(std::string key, std::string_view v);
  void AddStringArray(std::string key, const std::vector<std::string>& v);
  void AddF32Array(std::string key, const std::vector<float>& v);
  void AddI32Array(std::string key, const std::vector<int32_t>& v);

  // Tensors. `data` is placed in the data section at the next aligned
  // offset, unless `offset_override` gives the recorded offset explicitly
  // (the data is still placed as usual).
  void AddTensor(std::string name, std::vector<uint64_t> dims, uint32_t ggml_type,
                 std::string data, std::optional<uint64_t> offset_override = std::nullopt);
  void AddTensorF32(std::string name, std::vector<uint64_t> dims,
                    const std::vector<float>& values);

  std::string Build(GgufLayout* layout = nullptr) const;

 private:
  struct Kv {
    std::string key;
    uint32_t type;
    std::string encoded;
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::string data;
    std::optional<uint64_t> offset_override;
  };
  uint32_t version_ = 3;
  uint64_t alignment_ = 32;
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

// A small LLaMA in GGUF form with deterministic pseudo-random weights.
struct LlamaGgufOptions {
  DType dtype = DType::kF32;       // matrices; norms are always F32
  bool with_output = true;         // false: output.weight omitted (tied)
  std::string skip_tensor;         // omit this tensor
  std::string reshape_tensor;      // write this tensor with its dims swapped/extended
  bool with_tokenizer = false;     // a minimal tokenizer.ggml.* vocabulary
  std::optional<int64_t> block_count;  // declared llama.block_count (default: n_layers)
};
void AddLlamaGguf(GgufWriter& w, const ModelConfig& config, uint64_t seed,
                  const LlamaGgufOptions& options = {});

// A tiny valid config (dim 16, 2 layers, 4 heads, 2 kv heads, ffn 32, vocab 40).
ModelConfig TinyLlamaConfig();

// Deterministic values in [-0.5, 0.5).
std::vector<float> PseudoRandom(uint64_t seed, size_t n);

// Writes `bytes` to `path`; returns false on failure.
bool WriteFile(const std::string& path, std::string_view bytes);

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_MODEL_FILES_GGUF_WRITER_H_
