// Helpers shared by the SeqPE reference tests: running seqpe_ref.py on a
// model directory the test wrote, and deterministic token sequences.
// Header-only; needs the compile definitions HR_REF_PYTHON and
// HR_SEQPE_REF_SCRIPT (tests/reference/CMakeLists.txt).
#ifndef HEADROOM_TESTS_REFERENCE_SEQPE_TEST_UTIL_H_
#define HEADROOM_TESTS_REFERENCE_SEQPE_TEST_UTIL_H_

#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "server/common/splitmix64.h"

namespace hr::testing {

inline std::vector<int32_t> SeqPeTestTokens(int64_t n, int64_t vocab, uint64_t seed) {
  SplitMix64 rng{seed};
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng.Below(vocab));
  return t;
}

// Runs `python seqpe_ref.py MODE MODEL_DIR REQUEST OUT_DIR`; "" on success,
// else the command and its output.
inline std::string RunSeqPeReference(const std::string& mode, const std::string& model_dir,
                                     const std::string& request, const std::string& out_dir) {
  const char* env_python = std::getenv("HEADROOM_PYTHON");
  const std::string python = env_python != nullptr ? env_python : HR_REF_PYTHON;
  const std::string log = out_dir + ".log";
  const std::string cmd = "'" + python + "' '" + HR_SEQPE_REF_SCRIPT + "' " + mode + " '" +
                          model_dir + "' '" + request + "' '" + out_dir + "' > '" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    return "`" + cmd + "` returned " + std::to_string(rc) + ":\n" + ss.str() +
           "\n(needs python3 with numpy, or set HEADROOM_PYTHON)";
  }
  return "";
}

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_REFERENCE_SEQPE_TEST_UTIL_H_
