// Shared by the end-to-end client tests: starting a server and running the
// `headroom` CLI and the Python client against it.
#ifndef HEADROOM_TESTS_CLIENT_E2E_UTIL_H_
#define HEADROOM_TESTS_CLIENT_E2E_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/server_process.h"
#include "tests/util/subprocess.h"

namespace hr::testing {

// Runs `binary args...`; a failure to run at all fails the test (the result
// then has exit_code -1).
inline ProcessResult RunOrFail(const std::string& binary, std::vector<std::string> args,
                               const std::string& stdin_text = "") {
  args.insert(args.begin(), binary);
  auto r = RunProcess(args, stdin_text, absl::Seconds(120));
  if (!r.ok()) {
    ADD_FAILURE() << r.status();
    return ProcessResult{};
  }
  return *r;
}

// `headroom SUBCOMMAND --server ADDRESS args...`.
inline ProcessResult RunCli(const std::string& address, const std::string& subcommand,
                            std::vector<std::string> args, const std::string& stdin_text = "") {
  args.insert(args.begin(), {subcommand, "--server", address});
  return RunOrFail(HR_HEADROOM_BINARY, std::move(args), stdin_text);
}

// python3 client/python/headroom_client.py --server ADDRESS args...
inline ProcessResult RunPythonClient(const std::string& address, std::vector<std::string> args) {
  args.insert(args.begin(), {HR_PYTHON_CLIENT, "--server", address});
  return RunOrFail(HR_PYTHON, std::move(args));
}

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_CLIENT_E2E_UTIL_H_
