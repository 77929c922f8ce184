// GGUF v3 container parser (the llama.cpp model format).
//
// Parse() validates the whole header against the buffer before returning:
// every string, array and tensor extent is bounds-checked, so a truncated or
// corrupt file yields an INVALID_ARGUMENT / DATA_LOSS error naming the file and
// the byte offset or tensor, never an out-of-bounds read. Unknown tensor types
// give UNIMPLEMENTED naming the tensor.
//
// Thread-safety: immutable after Parse(). Ownership: GgufFile borrows the
// buffer given to Parse(); Open() keeps its own mapping alive.
#ifndef HEADROOM_SERVER_MODEL_GGUF_H_
#define HEADROOM_SERVER_MODEL_GGUF_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/mapped_file.h"
#include "server/model/dtype.h"

namespace hr {

// A metadata value. Arrays hold scalars or strings (nested arrays rejected).
struct GgufValue {
  using Array = std::vector<std::variant<int64_t, uint64_t, double, bool, std::string>>;
  std::variant<int64_t, uint64_t, double, bool, std::string, Array> value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the fastest-varying (row length)
  DType dtype;
  const uint8_t* data;        // into the file buffer, bounds-checked
  uint64_t size_bytes;
  uint64_t file_offset;       // absolute offset of the data in the file
};

class GgufFile {
 public:
  // Memory-maps and parses `path`.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses a buffer that outlives the result. `name` prefixes error messages.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size,
                                                         std::string_view name);

  const std::string& name() const { return name_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;

  // Typed metadata lookups. NOT_FOUND when absent; INVALID_ARGUMENT naming the
  // key when present with another type. Integers of any width convert when the
  // value fits; GetFloat/GetFloatArray also accept integers.
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  absl::StatusOr<double> GetFloat(std::string_view key) const;
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::vector<double>> GetFloatArray(std::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  bool Has(std::string_view key) const;

 private:
  GgufFile() = default;

  std::string name_;
  MappedFile file_;  // empty when parsed from a caller-owned buffer
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_GGUF_H_
