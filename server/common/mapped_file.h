// Read-only memory mapping of a whole file.
//
// Thread-safety: immutable after Open(); data() may be read from any thread.
// Ownership: the mapping lives as long as the MappedFile (move-only).
#ifndef HEADROOM_SERVER_COMMON_MAPPED_FILE_H_
#define HEADROOM_SERVER_COMMON_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace hr {

class MappedFile {
 public:
  // Maps `path` read-only. NOT_FOUND if missing; an empty file maps to size 0.
  static absl::StatusOr<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size_bytes() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void Reset();

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_COMMON_MAPPED_FILE_H_
