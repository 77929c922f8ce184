// A SelectionObserver that writes the chunks each (layer, head, query
// position) selected as JSON lines, for debugging a request:
//   {"layer":3,"head":5,"pos":70123,"chunks":[0,17,230,273,274]}
// Positions below `first_position` are skipped (e.g. the prompt).
//
// Thread-safety: PagedSequence serialises its observer calls.
#ifndef HEADROOM_SERVER_LONGCTX_SELECTION_DUMP_H_
#define HEADROOM_SERVER_LONGCTX_SELECTION_DUMP_H_

#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/longctx/paged_sequence.h"

namespace hr {

class SelectionDump : public SelectionObserver {
 public:
  static absl::StatusOr<std::unique_ptr<SelectionDump>> Open(const std::string& path,
                                                             int64_t first_position);
  ~SelectionDump() override;

  void OnSelection(int layer, int head, int64_t position, std::span<const int32_t> chunks) override;
  int64_t records() const { return records_; }

 private:
  SelectionDump(std::FILE* file, int64_t first_position) : file_(file), first_(first_position) {}

  std::FILE* file_;
  int64_t first_;
  int64_t records_ = 0;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_SELECTION_DUMP_H_
