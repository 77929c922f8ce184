// Readers for the tokenizer reference data under $HEADROOM_SHARED_DIR
// (see ../shared/tokenizers/README.md and ../shared/models/README.md).
#ifndef HEADROOM_TESTS_TOKENIZER_TOKENIZER_TEST_DATA_H_
#define HEADROOM_TESTS_TOKENIZER_TOKENIZER_TEST_DATA_H_

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace hr::testing {

struct VocabTestCase {
  std::string input;
  std::vector<int32_t> expected;  // no BOS
};

// Space-separated ids (any whitespace) -> ids.
inline std::vector<int32_t> ParseIds(const std::string& text) {
  std::istringstream in(text);
  std::vector<int32_t> ids;
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

inline std::string LlamaVocabGguf() { return SharedDir() + "/tokenizers/ggml-vocab-llama-spm.gguf"; }
inline std::string Llama2SentencePieceModel() {
  return SharedDir() + "/tokenizers/llama2-tokenizer.model";
}

// The cases of llama.cpp's test-tokenizer-0 for `vocab` (`vocab`.inp/.out),
// split exactly as llama.cpp does: the .inp content is cut at every
// "\n__ggml_vocab_test__\n" (the file ends with one, which yields no trailing
// case; an empty case is an empty input), and the .out file has one line of
// ids per case (an empty line for an empty input).
inline std::vector<VocabTestCase> ReadVocabTestCases(const std::string& vocab) {
  const std::string raw = ReadFileOrDie(vocab + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(ReadFileOrDie(vocab + ".out"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  if (lines.size() != inputs.size()) {
    ADD_FAILURE() << vocab << ": " << inputs.size() << " inputs but " << lines.size() << " outputs";
    return {};
  }
  std::vector<VocabTestCase> cases;
  for (size_t i = 0; i < inputs.size(); ++i) cases.push_back({inputs[i], ParseIds(lines[i])});
  return cases;
}

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_TOKENIZER_TOKENIZER_TEST_DATA_H_
