// Safetensors container parser (Hugging Face checkpoints).
//
// Format: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {...}}, then the data. Parse() checks the header length, the
// JSON, every dtype, that shape × element size equals the byte extent and that
// every extent lies inside the file; errors name the file and the tensor.
// Supported dtypes: F32, F16, BF16 (others: UNIMPLEMENTED naming the tensor).
//
// Thread-safety: immutable after Parse(). Ownership as in gguf.h.
#ifndef HEADROOM_SERVER_MODEL_SAFETENSORS_H_
#define HEADROOM_SERVER_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/mapped_file.h"
#include "server/model/dtype.h"

namespace hr {

struct SafetensorsTensor {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order: shape.back() is the fastest-varying
  DType dtype;
  const uint8_t* data;
  uint64_t size_bytes;
  uint64_t file_offset;  // absolute offset of the data in the file
};

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(const uint8_t* data, size_t size,
                                                                std::string_view name);

  const std::string& name() const { return name_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* FindTensor(std::string_view name) const;

 private:
  SafetensorsFile() = default;

  std::string name_;
  MappedFile file_;
  std::vector<SafetensorsTensor> tensors_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SAFETENSORS_H_
