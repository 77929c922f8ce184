// A blocking HTTP GET for tests (libcurl), e.g. of a /metrics page.
#ifndef HEADROOM_TESTS_UTIL_HTTP_GET_H_
#define HEADROOM_TESTS_UTIL_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hr::testing {

// The body of a 200 response; UNAVAILABLE for transport errors, other
// statuses as FAILED_PRECONDITION with the code.
absl::StatusOr<std::string> HttpGet(const std::string& url, absl::Duration timeout = absl::Seconds(10));

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_UTIL_HTTP_GET_H_
