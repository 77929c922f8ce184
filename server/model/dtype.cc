#include "server/model/dtype.h"

#include <cstring>
#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace hr {

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kQ8_0:
      return "Q8_0";
  }
  return "?";
}

std::optional<uint64_t> DTypeBytes(DType dtype, uint64_t n_elements) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  switch (dtype) {
    case DType::kF32:
      if (n_elements > kMax / 4) return std::nullopt;
      return n_elements * 4;
    case DType::kF16:
    case DType::kBF16:
      if (n_elements > kMax / 2) return std::nullopt;
      return n_elements * 2;
    case DType::kQ8_0: {
      if (n_elements % kQ8_0BlockSize != 0) return std::nullopt;
      uint64_t blocks = n_elements / kQ8_0BlockSize;
      if (blocks > kMax / kQ8_0BlockBytes) return std::nullopt;
      return blocks * kQ8_0BlockBytes;
    }
  }
  return std::nullopt;
}

namespace {
inline float BitsToF32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}
inline uint32_t F32ToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}
inline uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}
}  // namespace

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / nan (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: normalise.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    mant &= 0x3FFu;
    bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
  }
  return BitsToF32(bits);
}

uint16_t F32ToF16(float f) {
  const uint32_t x = F32ToBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t exp = (x >> 23) & 0xFFu;
  const uint32_t mant = x & 0x7FFFFFu;
  if (exp == 0xFF) {
    if (mant == 0) return sign | 0x7C00u;  // inf
    return static_cast<uint16_t>(sign | 0x7E00u | (mant >> 13));  // quiet nan
  }
  const int32_t e = static_cast<int32_t>(exp) - 127 + 15;  // biased f16 exponent
  if (e >= 0x1F) return sign | 0x7C00u;                    // overflow -> inf
  if (e <= 0) {
    // Subnormal or zero in f16.
    if (e < -10) return sign;  // too small: rounds to zero (below half of min subnormal)
    const uint32_t m = mant | 0x800000u;  // implicit bit
    const int shift = 14 - e;             // 14..24
    uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);  // carry into exponent is correct
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry to inf: correct
  return static_cast<uint16_t>(sign | half);
}

float BF16ToF32(uint16_t h) { return BitsToF32(static_cast<uint32_t>(h) << 16); }

namespace {

// F16 -> F32 eight at a time with the F16C instruction (exact, like
// F16ToF32, for every value but signalling NaNs, which come out quiet),
// chosen at run time: the build targets baseline x86-64. Written with
// intrinsics because the KV cache's F16 storage converts every chunk it
// reads, one out-of-line call per element otherwise (with this, F16 and F32
// KV gave the same 128K prefill time: bench/results/longctx_cpu.md).
#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) void F16ToF32F16c(const uint8_t* src, uint64_t n, float* dst) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = F16ToF32(LoadU16(src + 2 * i));
}

bool HasF16c() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return has;
}
#endif

}  // namespace

void ConvertToF32(DType dtype, const uint8_t* src, uint64_t n_elements, float* dst) {
  // An empty tensor may come with null pointers (an empty vector's data()):
  // memcpy on null is undefined even for 0 bytes (found by gguf_fuzz).
  if (n_elements == 0) return;
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, n_elements * sizeof(float));
      return;
    case DType::kF16:
#if defined(__x86_64__)
      if (HasF16c()) {
        F16ToF32F16c(src, n_elements, dst);
        return;
      }
#endif
      for (uint64_t i = 0; i < n_elements; ++i) dst[i] = F16ToF32(LoadU16(src + 2 * i));
      return;
    case DType::kBF16:
      for (uint64_t i = 0; i < n_elements; ++i) dst[i] = BF16ToF32(LoadU16(src + 2 * i));
      return;
    case DType::kQ8_0: {
      const uint64_t blocks = n_elements / kQ8_0BlockSize;
      for (uint64_t b = 0; b < blocks; ++b) {
        const uint8_t* block = src + b * kQ8_0BlockBytes;
        const float d = F16ToF32(LoadU16(block));
        const int8_t* qs = reinterpret_cast<const int8_t*>(block + 2);
        float* out = dst + b * kQ8_0BlockSize;
        for (int64_t j = 0; j < kQ8_0BlockSize; ++j) out[j] = d * static_cast<float>(qs[j]);
      }
      return;
    }
  }
}

}  // namespace hr
