#include "server/longctx/selection_dump.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hr {

absl::StatusOr<std::unique_ptr<SelectionDump>> SelectionDump::Open(const std::string& path,
                                                                   int64_t first_position) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write: ", std::strerror(errno)));
  }
  return std::unique_ptr<SelectionDump>(new SelectionDump(f, first_position));
}

SelectionDump::~SelectionDump() { std::fclose(file_); }

void SelectionDump::OnSelection(int layer, int head, int64_t position,
                                std::span<const int32_t> chunks) {
  if (position < first_) return;
  std::fprintf(file_, "{\"layer\":%d,\"head\":%d,\"pos\":%ld,\"chunks\":[", layer, head,
               static_cast<long>(position));
  for (size_t i = 0; i < chunks.size(); ++i) std::fprintf(file_, i ? ",%d" : "%d", chunks[i]);
  std::fputs("]}\n", file_);
  ++records_;
}

}  // namespace hr
