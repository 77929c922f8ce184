// Helpers shared by the tests: where the reference data and build live.
#ifndef HEADROOM_TESTS_TEST_UTIL_H_
#define HEADROOM_TESTS_TEST_UTIL_H_

#include <string>

namespace hr::testing {

// ../shared (models/, tokenizers/), from $HEADROOM_SHARED_DIR.
std::string SharedDir();
// The source tree root and the build tree root.
std::string SourceDir();
std::string BuildDir();
// A fresh empty directory under the build tree for this test's files.
std::string MakeTempDir(const std::string& prefix);
// Whole file contents; fails the test if unreadable.
std::string ReadFileOrDie(const std::string& path);

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_TEST_UTIL_H_
