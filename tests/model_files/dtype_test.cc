// DType sizes and conversions to F32.
#include "server/model/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "tests/model_files/gguf_writer.h"

namespace hr {
namespace {

float Bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(DTypeTest, NamesAndBytes) {
  EXPECT_EQ(DTypeName(DType::kF32), "F32");
  EXPECT_EQ(DTypeName(DType::kF16), "F16");
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeName(DType::kQ8_0), "Q8_0");
  EXPECT_EQ(DTypeBytes(DType::kF32, 10), 40u);
  EXPECT_EQ(DTypeBytes(DType::kF16, 10), 20u);
  EXPECT_EQ(DTypeBytes(DType::kBF16, 0), 0u);
  EXPECT_EQ(DTypeBytes(DType::kQ8_0, 64), 68u);
  EXPECT_EQ(DTypeBytes(DType::kQ8_0, 33), std::nullopt);  // not whole blocks
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(DTypeBytes(DType::kF32, max / 4 + 1), std::nullopt);
  EXPECT_EQ(DTypeBytes(DType::kF16, max / 2 + 1), std::nullopt);
  EXPECT_EQ(DTypeBytes(DType::kF32, max / 4), max / 4 * 4);
  EXPECT_EQ(DTypeBytes(DType::kQ8_0, (max / 32) * 32), std::nullopt);  // 34/32 overflows
}

TEST(DTypeTest, F16KnownValues) {
  EXPECT_EQ(F16ToF32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(F16ToF32(0x8000)));
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0xC000), -2.0f);
  EXPECT_EQ(F16ToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);               // max finite
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));  // min normal
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // min subnormal
  EXPECT_EQ(F16ToF32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(F16ToF32(0x7C00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7E00)));

  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);  // halfway to 2^16 rounds to even: inf
  EXPECT_EQ(F32ToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(1e10f), 0x7C00);
  EXPECT_EQ(F32ToF16(-INFINITY), 0xFC00);
  EXPECT_EQ(F32ToF16(NAN) & 0x7C00, 0x7C00);
  EXPECT_NE(F32ToF16(NAN) & 0x03FF, 0);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);        // tie -> even (0)
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);        // above the tie
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);        // 1.5 ulp tie -> even (2)
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  // Round to nearest even between 1 and 1 + 2^-10.
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie, even down
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, even up
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  // Subnormal rounding carries into the smallest normal.
  EXPECT_EQ(F32ToF16(Bits(0x387FF000u)), 0x0400);
}

TEST(DTypeTest, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f)))) << h;
      continue;
    }
    ASSERT_EQ(F32ToF16(f), h) << "h=" << h;
  }
}

TEST(DTypeTest, F32ToF16IsNearest) {
  // Against a brute-force nearest search on a sample of floats.
  std::vector<float> sample = hr::testing::PseudoRandom(7, 2000);
  for (float& v : sample) v *= 300.0f;
  for (float v : sample) {
    const uint16_t h = F32ToF16(v);
    const double err = std::fabs(static_cast<double>(F16ToF32(h)) - v);
    for (int d : {-1, 1}) {
      const float other = F16ToF32(static_cast<uint16_t>(h + d));
      if (std::isfinite(other)) {
        EXPECT_LE(err, std::fabs(static_cast<double>(other) - v)) << v;
      }
    }
  }
}

TEST(DTypeTest, BF16) {
  EXPECT_EQ(BF16ToF32(0x3F80), 1.0f);
  EXPECT_EQ(BF16ToF32(0xC040), -3.0f);
  EXPECT_EQ(BF16ToF32(0x4049), 3.140625f);
  EXPECT_TRUE(std::isinf(BF16ToF32(0x7F80)));
  const uint8_t bytes[4] = {0x80, 0x3F, 0x40, 0xC0};  // little-endian 1.0, -3.0
  float out[2];
  ConvertToF32(DType::kBF16, bytes, 2, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
}

TEST(DTypeTest, ConvertF32AndF16) {
  const std::vector<float> values = {0.0f, 1.5f, -2.25f, 1e-3f, 65504.0f};
  const std::string f32 = hr::testing::EncodeTensorData(DType::kF32, values);
  std::vector<float> out(values.size());
  ConvertToF32(DType::kF32, reinterpret_cast<const uint8_t*>(f32.data()), values.size(), out.data());
  EXPECT_EQ(out, values);
  const std::string f16 = hr::testing::EncodeTensorData(DType::kF16, values);
  ASSERT_EQ(f16.size(), 2 * values.size());
  ConvertToF32(DType::kF16, reinterpret_cast<const uint8_t*>(f16.data()), values.size(), out.data());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(out[i], values[i], 1e-3 * std::fabs(values[i]) + 1e-6);
}

// The bulk F16 conversion (vectorised where the CPU allows) equals the
// scalar F16ToF32 on every one of the 65536 halves, bit for bit (NaNs: a
// NaN of the same sign), from every start offset and for tails of 0-7.
TEST(DTypeTest, BulkF16ConversionEqualsScalarOnEveryValue) {
  std::vector<uint8_t> bytes(2 * 65536 + 16);
  for (uint32_t h = 0; h < 65536; ++h) {
    bytes[2 * h] = static_cast<uint8_t>(h & 0xFF);
    bytes[2 * h + 1] = static_cast<uint8_t>(h >> 8);
  }
  for (uint64_t start : {uint64_t{0}, uint64_t{1}, uint64_t{5}}) {
    for (uint64_t n : {uint64_t{65536} - start, uint64_t{7}, uint64_t{9}, uint64_t{1}}) {
      std::vector<float> out(n);
      ConvertToF32(DType::kF16, bytes.data() + 2 * start, n, out.data());
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t h = static_cast<uint16_t>(start + i);
        const float want = F16ToF32(h);
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(out[i])) << "half 0x" << std::hex << h;
          ASSERT_EQ(std::signbit(out[i]), std::signbit(want)) << "half 0x" << std::hex << h;
        } else {
          uint32_t got_bits, want_bits;
          std::memcpy(&got_bits, &out[i], 4);
          std::memcpy(&want_bits, &want, 4);
          ASSERT_EQ(got_bits, want_bits) << "half 0x" << std::hex << h;
        }
      }
    }
  }
}

TEST(DTypeTest, ConvertZeroElementsAcceptsNull) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    ConvertToF32(dtype, nullptr, 0, nullptr);  // found by gguf_fuzz: memcpy(null, null, 0)
  }
}

TEST(DTypeTest, Q8_0Block) {
  // Hand-made block: d = 0.5 (F16 0x3800), qs = -128..127 stepping.
  uint8_t block[2 * kQ8_0BlockBytes] = {};
  block[0] = 0x00;
  block[1] = 0x38;
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128));
  // Second block: d = -2 (0xC000), qs = 1, -1, 2, -2, ...
  block[34] = 0x00;
  block[35] = 0xC0;
  for (int j = 0; j < 32; ++j) block[36 + j] = static_cast<uint8_t>(static_cast<int8_t>((j % 2 ? -1 : 1) * (j / 2 + 1)));
  float out[64];
  ConvertToF32(DType::kQ8_0, block, 64, out);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * static_cast<float>(j * 8 - 128)) << j;
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[32 + j], -2.0f * (j % 2 ? -1 : 1) * (j / 2 + 1)) << j;

  // Quantize + dequantize with the test writer: error within half a step.
  std::vector<float> values = hr::testing::PseudoRandom(3, 128);
  const std::string q = hr::testing::EncodeTensorData(DType::kQ8_0, values);
  ASSERT_EQ(q.size(), 4 * kQ8_0BlockBytes);
  std::vector<float> back(values.size());
  ConvertToF32(DType::kQ8_0, reinterpret_cast<const uint8_t*>(q.data()), values.size(), back.data());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(back[i], values[i], 0.5f / 127 * 1.01f);
}

}  // namespace
}  // namespace hr
