// Status helpers shared by every module.
//
// Host code returns absl::Status / absl::StatusOr<T>; no exceptions cross a
// module boundary. Abseil 20220623 has no status macros, so these are ours.
#ifndef HEADROOM_SERVER_COMMON_STATUS_H_
#define HEADROOM_SERVER_COMMON_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define HR_STATUS_CONCAT_INNER_(a, b) a##b
#define HR_STATUS_CONCAT_(a, b) HR_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define HR_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::absl::Status hr_status_ = (expr);           \
    if (!hr_status_.ok()) return hr_status_;      \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status.
#define HR_ASSIGN_OR_RETURN(lhs, rexpr) \
  HR_ASSIGN_OR_RETURN_IMPL_(HR_STATUS_CONCAT_(hr_statusor_, __LINE__), lhs, rexpr)
#define HR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

// Invariant check: aborts with file, line and message. For programming errors
// only, never for bad input.
#define HR_CHECK(cond, msg)                                        \
  do {                                                             \
    if (!(cond)) ::hr::CheckFailed(__FILE__, __LINE__, #cond, msg); \
  } while (0)

namespace hr {

[[noreturn]] void CheckFailed(const char* file, int line, const char* cond,
                              std::string_view msg);

// Prefixes a non-OK status's message with `context` ("file.gguf: ...").
absl::Status Annotate(const absl::Status& status, std::string_view context);

}  // namespace hr

#endif  // HEADROOM_SERVER_COMMON_STATUS_H_
