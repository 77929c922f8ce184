// Safetensors parser: valid files built by the test writer, and truncated or
// corrupt ones (each must fail cleanly, naming the file and the tensor or
// offset).
#include "server/model/safetensors.h"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_files/gguf_writer.h"
#include "tests/model_files/safetensors_writer.h"
#include "tests/test_util.h"

namespace hr {
namespace {

using ::hr::testing::BuildSafetensors;
using ::hr::testing::BuildSafetensorsRaw;
using ::hr::testing::EncodeTensorData;
using ::hr::testing::StTensor;
using ::testing::AnyOf;
using ::testing::HasSubstr;

struct Parsed {
  std::vector<uint8_t> buffer;
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file;
};
std::unique_ptr<Parsed> ParseBytes(const std::string& bytes, const std::string& name) {
  auto p = std::make_unique<Parsed>();
  p->buffer.assign(bytes.begin(), bytes.end());
  p->file = SafetensorsFile::Parse(p->buffer.data(), p->buffer.size(), name);
  return p;
}

std::vector<StTensor> SampleTensors() {
  return {
      {"a.weight", "F32", {2, 3}, EncodeTensorData(DType::kF32, {1, 2, 3, 4, 5, 6})},
      {"b.f16", "F16", {4}, EncodeTensorData(DType::kF16, {0.5f, -1, 2, 3})},
      {"c.bf16", "BF16", {1, 2}, EncodeTensorData(DType::kBF16, {1, -3})},
      {"scalar", "F32", {}, EncodeTensorData(DType::kF32, {7})},
      {"empty", "F32", {0, 4}, ""},
  };
}

TEST(SafetensorsTest, ParsesValidFile) {
  const std::string bytes = BuildSafetensors(SampleTensors());
  auto p = ParseBytes(bytes, "ok.safetensors");
  ASSERT_TRUE(p->file.ok()) << p->file.status();
  const SafetensorsFile& f = **p->file;
  EXPECT_EQ(f.name(), "ok.safetensors");
  ASSERT_EQ(f.tensors().size(), 5u);
  const SafetensorsTensor* a = f.FindTensor("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_EQ(a->size_bytes, 24u);
  float v[6];
  std::memcpy(v, a->data, 24);
  EXPECT_EQ(v[5], 6.0f);
  EXPECT_EQ(a->data, p->buffer.data() + a->file_offset);
  EXPECT_EQ(f.FindTensor("b.f16")->dtype, DType::kF16);
  EXPECT_EQ(f.FindTensor("c.bf16")->dtype, DType::kBF16);
  float c[2];
  ConvertToF32(DType::kBF16, f.FindTensor("c.bf16")->data, 2, c);
  EXPECT_EQ(c[1], -3.0f);
  EXPECT_EQ(f.FindTensor("scalar")->shape.size(), 0u);
  EXPECT_EQ(f.FindTensor("empty")->size_bytes, 0u);
  EXPECT_EQ(f.FindTensor("__metadata__"), nullptr);
  EXPECT_EQ(f.FindTensor("missing"), nullptr);
}

TEST(SafetensorsTest, OpenFromDisk) {
  const std::string dir = hr::testing::MakeTempDir("st-open");
  const std::string path = dir + "/model.safetensors";
  ASSERT_TRUE(hr::testing::WriteFile(path, BuildSafetensors(SampleTensors())));
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->tensors().size(), 5u);
  auto missing = SafetensorsFile::Open(dir + "/missing.safetensors");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(SafetensorsTest, TruncatedFailsCleanly) {
  const std::string bytes = BuildSafetensors(SampleTensors());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto p = ParseBytes(bytes.substr(0, n), "cut.safetensors");
    ASSERT_FALSE(p->file.ok()) << n;
    const absl::Status& s = p->file.status();
    ASSERT_THAT(s.code(), AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument))
        << n << ": " << s;
    ASSERT_THAT(s.message(), HasSubstr("cut.safetensors")) << s;
    ASSERT_THAT(s.message(), AnyOf(HasSubstr("offset"), HasSubstr("tensor '"))) << s;
  }
}

void ExpectBad(const std::string& bytes, absl::StatusCode code, const char* part) {
  auto p = ParseBytes(bytes, "bad.safetensors");
  ASSERT_FALSE(p->file.ok()) << part;
  EXPECT_EQ(p->file.status().code(), code) << p->file.status();
  EXPECT_THAT(p->file.status().message(), HasSubstr("bad.safetensors"));
  EXPECT_THAT(p->file.status().message(), HasSubstr(part));
}

std::string Header(const std::string& entry) { return "{\"t\": " + entry + "}"; }

TEST(SafetensorsTest, BadHeaderLength) {
  using C = absl::StatusCode;
  std::string bytes = BuildSafetensors(SampleTensors());
  std::string big = bytes;
  const uint64_t huge = uint64_t{1} << 40;
  std::memcpy(&big[0], &huge, 8);
  ExpectBad(big, C::kInvalidArgument, "100 MB");
  std::string minus = bytes;
  const uint64_t all = ~uint64_t{0};
  std::memcpy(&minus[0], &all, 8);
  ExpectBad(minus, C::kInvalidArgument, "offset 0");
  std::string past = bytes;
  const uint64_t too_long = bytes.size() - 7;
  std::memcpy(&past[0], &too_long, 8);
  ExpectBad(past, C::kDataLoss, "offset 0");
  ExpectBad("abc", C::kDataLoss, "offset 0");
}

TEST(SafetensorsTest, BadJson) {
  using C = absl::StatusCode;
  ExpectBad(BuildSafetensorsRaw("{\"t\": {", ""), C::kInvalidArgument, "not valid JSON");
  ExpectBad(BuildSafetensorsRaw("[1, 2]", ""), C::kInvalidArgument, "not a JSON object");
  ExpectBad(BuildSafetensorsRaw("", ""), C::kInvalidArgument, "JSON");
  ExpectBad(BuildSafetensorsRaw(std::string(100000, '['), ""), C::kInvalidArgument, "JSON");
  // Valid JSON, wrong structure.
  ExpectBad(BuildSafetensorsRaw(Header("3"), ""), C::kInvalidArgument, "tensor 't'");
  ExpectBad(BuildSafetensorsRaw(Header(R"({"shape": [1], "data_offsets": [0, 4]})"), "1234"),
            C::kInvalidArgument, "dtype");
  ExpectBad(BuildSafetensorsRaw(Header(R"({"dtype": "F32", "data_offsets": [0, 4]})"), "1234"),
            C::kInvalidArgument, "shape");
  ExpectBad(BuildSafetensorsRaw(Header(R"({"dtype": "F32", "shape": [1]})"), "1234"),
            C::kInvalidArgument, "data_offsets");
  ExpectBad(BuildSafetensorsRaw(Header(R"({"dtype": "F32", "shape": [1], "data_offsets": [0]})"), "1234"),
            C::kInvalidArgument, "data_offsets");
  // Duplicate entries.
  ExpectBad(BuildSafetensorsRaw(
                R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                "1234"),
            C::kInvalidArgument, "duplicate");
  // nlohmann::json stops at a NUL, so NUL padding after the object is accepted.
  auto nul = ParseBytes(BuildSafetensorsRaw(std::string("{}\0\0", 4), ""), "nul.safetensors");
  EXPECT_TRUE(nul->file.ok()) << nul->file.status();
  // A metadata entry of any shape is ignored.
  auto ok = ParseBytes(BuildSafetensorsRaw(R"({"__metadata__": {"format": "pt"}})", ""), "m.safetensors");
  EXPECT_TRUE(ok->file.ok()) << ok->file.status();
}

TEST(SafetensorsTest, ShapeAndExtentChecks) {
  using C = absl::StatusCode;
  const std::string data(64, '\0');
  auto one = [&](const std::string& entry) { return BuildSafetensorsRaw(Header(entry), data); };
  ExpectBad(one(R"({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]})"),
            C::kInvalidArgument, "tensor 't'");
  ExpectBad(one(R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]})"),
            C::kInvalidArgument, "non-negative integers");
  ExpectBad(one(R"({"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]})"),
            C::kInvalidArgument, "6 F32 elements");
  ExpectBad(one(R"({"dtype": "F16", "shape": [4], "data_offsets": [0, 16]})"),
            C::kInvalidArgument, "tensor 't'");
  ExpectBad(one(R"({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]})"),
            C::kInvalidArgument, "begin 16 > end 0");
  ExpectBad(one(R"({"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]})"),
            C::kInvalidArgument, "non-negative");
  ExpectBad(one(R"({"dtype": "F32", "shape": [20], "data_offsets": [0, 80]})"),
            C::kInvalidArgument, "past the data section");
  ExpectBad(one(R"({"dtype": "F32", "shape": [4], "data_offsets": [56, 72]})"),
            C::kInvalidArgument, "past the data section");
  ExpectBad(one(R"({"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 16]})"),
            C::kInvalidArgument, "overflows");
  ExpectBad(one(R"({"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 16]})"),
            C::kInvalidArgument, "tensor 't'");
  ExpectBad(one(R"({"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551615, 18446744073709551615]})"),
            C::kInvalidArgument, "tensor 't'");
  ExpectBad(one(R"({"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 4]})"),
            C::kInvalidArgument, "dimensions");
  // Unsupported dtypes: UNIMPLEMENTED naming the tensor.
  for (const char* dtype : {"I8", "F64", "I64", "BOOL", "F8_E4M3", "U8", "whatever"}) {
    ExpectBad(one(absl::StrCat(R"({"dtype": ")", dtype, R"(", "shape": [4], "data_offsets": [0, 4]})")),
              C::kUnimplemented, "tensor 't'");
  }
  ExpectBad(one(R"({"dtype": 3, "shape": [4], "data_offsets": [0, 16]})"), C::kInvalidArgument,
            "dtype");
}

}  // namespace
}  // namespace hr
