// Invariants the fuzz targets check on every input (abort on violation, so
// both libFuzzer and the replay driver report it).
#ifndef HEADROOM_TESTS_FUZZ_FUZZ_CHECKS_H_
#define HEADROOM_TESTS_FUZZ_FUZZ_CHECKS_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace hr::fuzz {

[[noreturn]] inline void Fail(std::string_view what, const absl::Status& status) {
  const std::string s = status.ToString();
  std::fprintf(stderr, "fuzz invariant violated: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), s.c_str());
  std::abort();
}

// A parse error must name the file and say where (an offset or a tensor).
inline void CheckParseError(const absl::Status& status, std::string_view file_name) {
  if (status.ok()) return;
  const std::string_view msg(status.message().data(), status.message().size());
  if (msg.find(file_name) == std::string_view::npos) Fail("error does not name the file", status);
  if (msg.find("offset") == std::string_view::npos &&
      msg.find("tensor '") == std::string_view::npos) {
    Fail("error names neither an offset nor a tensor", status);
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnimplemented:
      return;
    default:
      Fail("unexpected status code", status);
  }
}

}  // namespace hr::fuzz

#endif  // HEADROOM_TESTS_FUZZ_FUZZ_CHECKS_H_
