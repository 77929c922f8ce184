// Tensor element types found in model files, and their conversion to F32.
//
// The CPU kernels compute in F32: F16, BF16 and Q8_0 weights are dequantized
// once at load time; F32 weights are used in place from the memory map.
#ifndef HEADROOM_SERVER_MODEL_DTYPE_H_
#define HEADROOM_SERVER_MODEL_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace hr {

enum class DType { kF32, kF16, kBF16, kQ8_0 };

std::string_view DTypeName(DType dtype);

// Q8_0 (ggml): blocks of 32 values, each an F16 scale then 32 int8s (34 bytes).
inline constexpr int64_t kQ8_0BlockSize = 32;
inline constexpr int64_t kQ8_0BlockBytes = 34;

// Bytes taken by `n_elements` values of `dtype`, or nullopt when the count is
// not representable (Q8_0 needs a multiple of 32; overflow).
std::optional<uint64_t> DTypeBytes(DType dtype, uint64_t n_elements);

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);  // round to nearest even
float BF16ToF32(uint16_t h);

// Converts `n_elements` values at `src` (of `dtype`, `DTypeBytes` bytes long)
// to F32 at `dst`. REQUIRES: sizes already validated by the caller.
void ConvertToF32(DType dtype, const uint8_t* src, uint64_t n_elements, float* dst);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_DTYPE_H_
