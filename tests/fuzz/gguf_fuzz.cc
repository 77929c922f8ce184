// Fuzz target: GgufFile::Parse on arbitrary bytes, then every typed getter on
// every key and a conversion of every (small) tensor.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/model/dtype.h"
#include "server/model/gguf.h"
#include "tests/fuzz/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr std::string_view kName = "fuzz.gguf";
  auto parsed = hr::GgufFile::Parse(data, size, kName);
  if (!parsed.ok()) {
    hr::fuzz::CheckParseError(parsed.status(), kName);
    return 0;
  }
  const hr::GgufFile& g = **parsed;
  for (const auto& [key, value] : g.metadata()) {
    if (!g.Has(key)) hr::fuzz::Fail("Has() misses a key", absl::OkStatus());
    (void)g.GetInt(key);
    (void)g.GetFloat(key);
    (void)g.GetString(key);
    (void)g.GetBool(key);
    (void)g.GetStringArray(key);
    (void)g.GetFloatArray(key);
    (void)g.GetIntArray(key);
  }
  (void)g.GetInt("absent.key");
  std::vector<float> out;
  for (const hr::GgufTensorInfo& t : g.tensors()) {
    if (g.FindTensor(t.name) != &t) hr::fuzz::Fail("FindTensor", absl::OkStatus());
    if (t.data < data || t.size_bytes > size || t.data + t.size_bytes > data + size ||
        t.file_offset != static_cast<uint64_t>(t.data - data)) {
      hr::fuzz::Fail("tensor extent outside the buffer", absl::OkStatus());
    }
    uint64_t n = 1;
    for (int64_t d : t.dims) n *= static_cast<uint64_t>(d);
    if (hr::DTypeBytes(t.dtype, n) != t.size_bytes) hr::fuzz::Fail("size", absl::OkStatus());
    if (n <= (1u << 20)) {
      out.resize(n);
      hr::ConvertToF32(t.dtype, t.data, n, out.data());
    }
  }
  return 0;
}
