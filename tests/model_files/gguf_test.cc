// GGUF parser: the real stories260K file, files built by GgufWriter, and
// truncated or corrupted files (each must fail cleanly, naming the file and
// the offset or tensor).
#include "server/model/gguf.h"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_files/gguf_writer.h"
#include "tests/test_util.h"

namespace hr {
namespace {

using ::hr::testing::GgufLayout;
using ::hr::testing::GgufWriter;
using ::testing::AnyOf;
using ::testing::HasSubstr;

std::string StoriesPath() { return hr::testing::SharedDir() + "/models/stories260K.gguf"; }

// Parses a heap copy of exactly `bytes.size()` bytes (so sanitizers catch any
// over-read), and keeps the copy alive as long as the result.
struct Parsed {
  std::vector<uint8_t> buffer;
  absl::StatusOr<std::unique_ptr<GgufFile>> file;
};
std::unique_ptr<Parsed> ParseBytes(const std::string& bytes, const std::string& name) {
  auto p = std::make_unique<Parsed>();
  p->buffer.assign(bytes.begin(), bytes.end());
  p->file = GgufFile::Parse(p->buffer.data(), p->buffer.size(), name);
  return p;
}

void Put64(std::string& bytes, size_t at, uint64_t v) { std::memcpy(&bytes[at], &v, 8); }
void Put32(std::string& bytes, size_t at, uint32_t v) { std::memcpy(&bytes[at], &v, 4); }

TEST(GgufTest, ParsesStories260K) {
  auto file = GgufFile::Open(StoriesPath());
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& g = **file;
  EXPECT_EQ(g.name(), StoriesPath());
  EXPECT_EQ(g.tensors().size(), 48u);
  EXPECT_EQ(g.metadata().size(), 19u);
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(*g.GetInt("llama.block_count"), 5);
  EXPECT_EQ(*g.GetInt("llama.attention.head_count"), 8);
  EXPECT_EQ(*g.GetInt("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(*g.GetInt("llama.feed_forward_length"), 172);
  EXPECT_EQ(*g.GetInt("llama.context_length"), 2048);
  EXPECT_NEAR(*g.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-9);
  EXPECT_FALSE(g.Has("llama.rope.freq_base"));  // loader default 10000
  EXPECT_EQ(*g.GetInt("tokenizer.ggml.seperator_token_id"), 4294967295LL);

  auto tokens = g.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  auto scores = g.GetFloatArray("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_EQ(scores->size(), 512u);
  auto types = g.GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_EQ((*types)[0], 2);
  EXPECT_EQ((*types)[1], 3);

  const GgufTensorInfo* embd = g.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(embd->dtype, DType::kF32);
  EXPECT_EQ(embd->size_bytes, 64u * 512 * 4);
  EXPECT_EQ(embd->file_offset, 14176u);  // header ends at 14152, aligned to 32
  const GgufTensorInfo* q = g.FindTensor("blk.0.attn_k.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dims, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(g.FindTensor("nope"), nullptr);
  // Data pointers agree with the file contents.
  const std::string bytes = hr::testing::ReadFileOrDie(StoriesPath());
  const GgufTensorInfo& last = g.tensors().back();
  EXPECT_EQ(last.file_offset + last.size_bytes, bytes.size());
  EXPECT_EQ(std::memcmp(last.data, bytes.data() + last.file_offset, last.size_bytes), 0);
}

TEST(GgufTest, TypedGetterErrors) {
  auto file = GgufFile::Open(StoriesPath());
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& g = **file;
  EXPECT_EQ(g.GetInt("missing.key").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(g.GetInt("missing.key").status().message(), HasSubstr("missing.key"));
  auto wrong = g.GetInt("general.architecture");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("general.architecture"));
  EXPECT_THAT(wrong.status().message(), HasSubstr("stories260K.gguf"));
  EXPECT_EQ(g.GetString("llama.block_count").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetFloat("general.name").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.scores").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetIntArray("tokenizer.ggml.tokens").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetFloatArray("llama.block_count").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*g.GetFloat("llama.block_count"), 5.0);  // integers read as floats
}

TEST(GgufTest, WriterRoundTripAllTypes) {
  GgufWriter w;
  w.set_version(2);
  w.set_alignment(64);
  w.AddAlignmentKey();
  w.AddU8("u8", 200);
  w.AddI32("i32", -7);
  w.AddU64("u64.big", ~uint64_t{0});
  w.AddI64("i64", -1234567890123LL);
  w.AddF32("f32", 0.25f);
  w.AddF64("f64", -1.5);
  w.AddBool("flag", true);
  w.AddString("s", "hello");
  w.AddStringArray("sa", {"a", "", "ccc"});
  w.AddF32Array("fa", {1.0f, -2.0f});
  w.AddI32Array("ia", {3, -4});
  w.AddTensor("f16", {4, 2}, hr::testing::kGgmlF16,
              hr::testing::EncodeTensorData(DType::kF16, std::vector<float>(8, 1.5f)));
  w.AddTensor("q8", {32, 1}, hr::testing::kGgmlQ8_0,
              hr::testing::EncodeTensorData(DType::kQ8_0, std::vector<float>(32, -0.5f)));
  w.AddTensor("bf16", {3}, hr::testing::kGgmlBF16,
              hr::testing::EncodeTensorData(DType::kBF16, {1.0f, 2.0f, 3.0f}));
  w.AddTensorF32("scalar", {}, {42.0f});
  w.AddTensorF32("empty", {0, 5}, {});
  GgufLayout layout;
  const std::string bytes = w.Build(&layout);
  auto p = ParseBytes(bytes, "roundtrip.gguf");
  ASSERT_TRUE(p->file.ok()) << p->file.status();
  const GgufFile& g = **p->file;
  EXPECT_EQ(*g.GetInt("u8"), 200);
  EXPECT_EQ(*g.GetInt("i32"), -7);
  EXPECT_EQ(g.GetInt("u64.big").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*g.GetInt("i64"), -1234567890123LL);
  EXPECT_EQ(*g.GetFloat("f32"), 0.25);
  EXPECT_EQ(*g.GetFloat("f64"), -1.5);
  EXPECT_TRUE(std::get<bool>(g.metadata().at("flag").value));
  EXPECT_EQ(*g.GetString("s"), "hello");
  EXPECT_EQ(*g.GetStringArray("sa"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(*g.GetFloatArray("fa"), (std::vector<double>{1.0, -2.0}));
  EXPECT_EQ(*g.GetIntArray("ia"), (std::vector<int64_t>{3, -4}));
  EXPECT_EQ(*g.GetFloatArray("ia"), (std::vector<double>{3.0, -4.0}));
  ASSERT_EQ(g.tensors().size(), 5u);
  EXPECT_EQ(layout.data_start % 64, 0u);
  for (size_t i = 0; i < g.tensors().size(); ++i) {
    EXPECT_EQ(g.tensors()[i].file_offset, layout.tensor_data_offsets[i]) << i;
    EXPECT_EQ(g.tensors()[i].data, p->buffer.data() + layout.tensor_data_offsets[i]);
  }
  EXPECT_EQ(g.FindTensor("f16")->dtype, DType::kF16);
  EXPECT_EQ(g.FindTensor("f16")->size_bytes, 16u);
  EXPECT_EQ(g.FindTensor("q8")->dtype, DType::kQ8_0);
  EXPECT_EQ(g.FindTensor("q8")->size_bytes, 34u);
  EXPECT_EQ(g.FindTensor("bf16")->dtype, DType::kBF16);
  EXPECT_EQ(g.FindTensor("scalar")->size_bytes, 4u);
  EXPECT_EQ(g.FindTensor("empty")->size_bytes, 0u);
  float v;
  std::memcpy(&v, g.FindTensor("scalar")->data, 4);
  EXPECT_EQ(v, 42.0f);
}

TEST(GgufTest, EmptyFileAndNoTensors) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  auto p = ParseBytes(w.Build(), "meta-only.gguf");
  ASSERT_TRUE(p->file.ok()) << p->file.status();
  EXPECT_TRUE((*p->file)->tensors().empty());

  auto empty = ParseBytes("", "empty.gguf");
  EXPECT_EQ(empty->file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(empty->file.status().message(), HasSubstr("empty.gguf"));
  EXPECT_THAT(empty->file.status().message(), HasSubstr("offset 0"));
}

TEST(GgufTest, OpenMissingFile) {
  auto file = GgufFile::Open("/nonexistent/dir/model.gguf");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("/nonexistent/dir/model.gguf"));
}

// Every prefix of the header, and cuts in the data, must fail with a message
// naming the file and the offset or tensor; never crash.
TEST(GgufTest, TruncatedStoriesFailsCleanly) {
  const std::string bytes = hr::testing::ReadFileOrDie(StoriesPath());
  ASSERT_EQ(bytes.size(), 1185376u);
  const size_t header_end = 14152;
  std::vector<size_t> cuts;
  for (size_t n = 0; n < header_end + 64; ++n) cuts.push_back(n);
  for (size_t n = header_end + 64; n < bytes.size(); n += 37811) cuts.push_back(n);
  cuts.push_back(bytes.size() - 1);
  for (size_t n : cuts) {
    auto p = ParseBytes(bytes.substr(0, n), "cut.gguf");
    ASSERT_FALSE(p->file.ok()) << "prefix of " << n << " bytes parsed";
    const absl::Status& s = p->file.status();
    ASSERT_THAT(s.code(), AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument))
        << n << ": " << s;
    ASSERT_THAT(s.message(), HasSubstr("cut.gguf")) << s;
    ASSERT_THAT(s.message(), AnyOf(HasSubstr("offset"), HasSubstr("tensor '"))) << s;
  }

  // A sample of them as real files, through Open().
  const std::string dir = hr::testing::MakeTempDir("gguf-trunc");
  int written = 0;
  for (size_t i = 0; i < cuts.size(); i += 97) {
    const std::string path = dir + "/cut-" + std::to_string(cuts[i]) + ".gguf";
    ASSERT_TRUE(hr::testing::WriteFile(path, std::string_view(bytes).substr(0, cuts[i])));
    auto file = GgufFile::Open(path);
    ASSERT_FALSE(file.ok()) << path;
    EXPECT_THAT(file.status().message(), HasSubstr(path));
    ++written;
  }
  EXPECT_GT(written, 100);
  std::filesystem::remove_all(dir);
}

struct Corruption {
  const char* what;
  absl::StatusCode code;
  const char* message_part;  // besides the file name
};

// Applies `mutate` to the stories file and expects `want`.
void ExpectCorrupt(const std::function<void(std::string&)>& mutate, const Corruption& want) {
  static const std::string original = hr::testing::ReadFileOrDie(StoriesPath());
  std::string bytes = original;
  mutate(bytes);
  auto p = ParseBytes(bytes, "corrupt.gguf");
  ASSERT_FALSE(p->file.ok()) << want.what;
  EXPECT_EQ(p->file.status().code(), want.code) << want.what << ": " << p->file.status();
  EXPECT_THAT(p->file.status().message(), HasSubstr("corrupt.gguf")) << want.what;
  EXPECT_THAT(p->file.status().message(), HasSubstr(want.message_part)) << want.what;
}

TEST(GgufTest, CorruptHeaderFields) {
  using C = absl::StatusCode;
  ExpectCorrupt([](std::string& b) { b[0] = 'X'; }, {"bad magic", C::kInvalidArgument, "offset 0"});
  ExpectCorrupt([](std::string& b) { Put32(b, 4, 1); }, {"v1", C::kUnimplemented, "version 1"});
  ExpectCorrupt([](std::string& b) { Put32(b, 4, 7); }, {"v7", C::kInvalidArgument, "offset 4"});
  ExpectCorrupt([](std::string& b) { Put32(b, 4, 0x03000000); },
                {"big endian", C::kInvalidArgument, "big-endian"});
  ExpectCorrupt([](std::string& b) { Put64(b, 8, uint64_t{1} << 62); },
                {"absurd n_tensors", C::kInvalidArgument, "offset 8"});
  ExpectCorrupt([](std::string& b) { Put64(b, 8, ~uint64_t{0}); },
                {"n_tensors -1", C::kInvalidArgument, "tensor count"});
  ExpectCorrupt([](std::string& b) { Put64(b, 16, uint64_t{1} << 60); },
                {"absurd n_kv", C::kInvalidArgument, "offset 16"});
  ExpectCorrupt([](std::string& b) { Put64(b, 16, 20); },  // one more kv than present
                {"n_kv + 1", C::kInvalidArgument, "offset"});
  ExpectCorrupt([](std::string& b) { Put64(b, 24, uint64_t{1} << 60); },
                {"absurd key length", C::kInvalidArgument, "offset 24"});
  ExpectCorrupt([](std::string& b) { Put64(b, 24, ~uint64_t{0}); },
                {"key length -1", C::kInvalidArgument, "offset 24"});
  // First kv: "tokenizer.ggml.tokens" (21 bytes), type at 24+8+21 = 53.
  ExpectCorrupt([](std::string& b) { Put32(b, 53, 99); },
                {"bad type id", C::kInvalidArgument, "offset 53"});
  // Its array header: element type at 57, count at 61.
  ExpectCorrupt([](std::string& b) { Put32(b, 57, 13); },
                {"bad element type", C::kInvalidArgument, "offset 57"});
  ExpectCorrupt([](std::string& b) { Put32(b, 57, 9); },
                {"nested array", C::kInvalidArgument, "nested"});
  ExpectCorrupt([](std::string& b) { Put64(b, 61, uint64_t{1} << 61); },
                {"absurd array count", C::kInvalidArgument, "offset 61"});
  // The first string of the array (at 69): absurd length.
  ExpectCorrupt([](std::string& b) { Put64(b, 69, uint64_t{1} << 40); },
                {"absurd element length", C::kInvalidArgument, "offset 69"});
}

TEST(GgufTest, CorruptTensorInfos) {
  using C = absl::StatusCode;
  // Tensor infos start at 11347 in stories260K (first: token_embd.weight).
  const std::string original = hr::testing::ReadFileOrDie(StoriesPath());
  const size_t ti = 11347;
  ASSERT_EQ(original.substr(ti + 8, 17), "token_embd.weight");
  const size_t n_dims_at = ti + 8 + 17, dims_at = n_dims_at + 4, type_at = dims_at + 16,
               offset_at = type_at + 4;
  ExpectCorrupt([&](std::string& b) { Put32(b, n_dims_at, 5); },
                {"5 dims", C::kInvalidArgument, "token_embd.weight"});
  ExpectCorrupt([&](std::string& b) { Put64(b, dims_at, uint64_t{1} << 63); },
                {"negative dim", C::kInvalidArgument, "token_embd.weight"});
  ExpectCorrupt([&](std::string& b) { Put64(b, dims_at, uint64_t{1} << 40); Put64(b, dims_at + 8, uint64_t{1} << 40); },
                {"dims overflow", C::kInvalidArgument, "overflows"});
  ExpectCorrupt([&](std::string& b) { Put64(b, dims_at + 8, uint64_t{1} << 61); },
                {"byte size overflow", C::kInvalidArgument, "token_embd.weight"});
  ExpectCorrupt([&](std::string& b) { Put64(b, dims_at + 8, uint64_t{1} << 30); },
                {"extent past EOF", C::kInvalidArgument, "extends past the end"});
  ExpectCorrupt([&](std::string& b) { Put32(b, type_at, 2); },
                {"Q4_0", C::kUnimplemented, "token_embd.weight"});
  ExpectCorrupt([&](std::string& b) { Put32(b, type_at, 12345); },
                {"unknown type", C::kUnimplemented, "12345"});
  ExpectCorrupt([&](std::string& b) { Put32(b, type_at, 8); Put64(b, dims_at, 48); },
                {"Q8_0 row", C::kInvalidArgument, "token_embd.weight"});
  ExpectCorrupt([&](std::string& b) { Put64(b, offset_at, 1ull << 40); },
                {"offset past EOF", C::kInvalidArgument, "token_embd.weight"});
  ExpectCorrupt([&](std::string& b) { Put64(b, offset_at, ~uint64_t{0} / 32 * 32); },
                {"offset near 2^64", C::kInvalidArgument, "extends past the end"});
  ExpectCorrupt([&](std::string& b) { Put64(b, offset_at, 4); },
                {"misaligned offset", C::kInvalidArgument, "alignment"});
  ExpectCorrupt([&](std::string& b) { std::memcpy(&b[ti + 8], "output", 6); b.replace(ti, 8, std::string("\x06\0\0\0\0\0\0\0", 8)); },
                {"name now shorter", C::kInvalidArgument, "offset"});
}

TEST(GgufTest, WriterBuiltCorruptions) {
  using C = absl::StatusCode;
  auto expect = [](const GgufWriter& w, C code, const char* part) {
    auto p = ParseBytes(w.Build(), "built.gguf");
    ASSERT_FALSE(p->file.ok()) << part;
    EXPECT_EQ(p->file.status().code(), code) << p->file.status();
    EXPECT_THAT(p->file.status().message(), HasSubstr("built.gguf"));
    EXPECT_THAT(p->file.status().message(), HasSubstr(part));
  };
  {
    GgufWriter w;
    w.AddU32("a", 1);
    w.AddU32("a", 2);
    expect(w, C::kInvalidArgument, "duplicate metadata key 'a'");
  }
  {
    GgufWriter w;
    w.AddTensorF32("t", {2}, {1, 2});
    w.AddTensorF32("t", {2}, {1, 2});
    expect(w, C::kInvalidArgument, "duplicate tensor name 't'");
  }
  {
    GgufWriter w;
    w.set_alignment(3);
    w.AddAlignmentKey();
    expect(w, C::kInvalidArgument, "general.alignment");
  }
  {
    GgufWriter w;
    w.AddString("general.alignment", "32");
    expect(w, C::kInvalidArgument, "general.alignment");
  }
  {
    GgufWriter w;
    w.AddRaw("b", hr::testing::kGgufBool, std::string(1, '\x02'));
    expect(w, C::kInvalidArgument, "bool");
  }
  {
    GgufWriter w;
    w.AddTensor("q", {16, 2}, hr::testing::kGgmlQ8_0, std::string(34, '\0'));
    expect(w, C::kInvalidArgument, "tensor 'q'");
  }
  {
    GgufWriter w;
    w.AddTensor("late", {4}, hr::testing::kGgmlF32, std::string(16, '\0'), /*offset=*/64);
    expect(w, C::kInvalidArgument, "tensor 'late'");
  }
}

// Byte-level corruption sweep over the header of a small built model: flips
// and overwrites of every header byte must never crash (result may be OK or
// an error naming the file).
TEST(GgufTest, HeaderByteSweepNeverCrashes) {
  GgufWriter w;
  hr::testing::LlamaGgufOptions opts;
  opts.with_tokenizer = true;
  hr::testing::AddLlamaGguf(w, hr::testing::TinyLlamaConfig(), 1, opts);
  GgufLayout layout;
  const std::string original = w.Build(&layout);
  int failures = 0;
  for (size_t i = 0; i < layout.header_end; ++i) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x80}, uint8_t(original[i] ^ 0x01)}) {
      std::string bytes = original;
      bytes[i] = static_cast<char>(v);
      auto p = ParseBytes(bytes, "sweep.gguf");
      if (!p->file.ok()) {
        ++failures;
        ASSERT_THAT(p->file.status().message(), HasSubstr("sweep.gguf")) << i;
      } else {
        for (const auto& [key, value] : (*p->file)->metadata()) {
          (void)(*p->file)->GetInt(key);
          (void)(*p->file)->GetStringArray(key);
        }
      }
    }
  }
  EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace hr
