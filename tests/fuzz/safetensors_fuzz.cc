// Fuzz target: SafetensorsFile::Parse on arbitrary bytes, then a conversion of
// every (small) tensor.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/model/dtype.h"
#include "server/model/safetensors.h"
#include "tests/fuzz/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr std::string_view kName = "fuzz.safetensors";
  auto parsed = hr::SafetensorsFile::Parse(data, size, kName);
  if (!parsed.ok()) {
    hr::fuzz::CheckParseError(parsed.status(), kName);
    return 0;
  }
  std::vector<float> out;
  for (const hr::SafetensorsTensor& t : (*parsed)->tensors()) {
    if ((*parsed)->FindTensor(t.name) != &t) hr::fuzz::Fail("FindTensor", absl::OkStatus());
    if (t.data < data || t.size_bytes > size || t.data + t.size_bytes > data + size) {
      hr::fuzz::Fail("tensor extent outside the buffer", absl::OkStatus());
    }
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    if (hr::DTypeBytes(t.dtype, n) != t.size_bytes) hr::fuzz::Fail("size", absl::OkStatus());
    if (n <= (1u << 20)) {
      out.resize(n);
      hr::ConvertToF32(t.dtype, t.data, n, out.data());
    }
  }
  return 0;
}
