#include "tests/test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace hr::testing {
namespace {
std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}
}  // namespace

std::string SharedDir() { return EnvOr("HEADROOM_SHARED_DIR", HR_DEFAULT_SHARED_DIR); }
std::string SourceDir() { return EnvOr("HEADROOM_SOURCE_DIR", HR_DEFAULT_SOURCE_DIR); }
std::string BuildDir() { return EnvOr("HEADROOM_BUILD_DIR", HR_DEFAULT_BUILD_DIR); }

std::string MakeTempDir(const std::string& prefix) {
  std::string templ = (std::filesystem::path(BuildDir()) / "test-tmp").string();
  std::filesystem::create_directories(templ);
  templ += "/" + prefix + "-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) ADD_FAILURE() << "mkdtemp failed for " << templ;
  return templ;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return "";
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace hr::testing
