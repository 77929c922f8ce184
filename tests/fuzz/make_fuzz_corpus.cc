// Writes a small seed corpus for the fuzz targets (generated, so no model
// files are copied into the repository):
//   OUT/gguf/*.gguf                 valid GGUF files in every dtype, with and
//                                   without a tokenizer, all metadata types
//   OUT/safetensors/*.safetensors   valid safetensors files and a small HF
//                                   LLaMA checkpoint (single file and shards)
//
//   make_fuzz_corpus OUT
#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/model_files/gguf_writer.h"
#include "tests/model_files/safetensors_writer.h"

namespace {

using namespace hr::testing;  // NOLINT: test tool
namespace fs = std::filesystem;

bool Write(const fs::path& path, const std::string& bytes) {
  if (!WriteFile(path.string(), bytes)) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out(argv[1]);
  fs::create_directories(out / "gguf");
  fs::create_directories(out / "safetensors");
  bool ok = true;

  // GGUF: tiny LLaMA models (dim 32 so Q8_0 rows are whole blocks).
  hr::ModelConfig c = TinyLlamaConfig();
  c.dim = 32;
  c.head_dim = 8;
  c.ffn_dim = 32;
  c.vocab_size = 8;
  c.n_layers = 1;
  for (hr::DType dtype : {hr::DType::kF32, hr::DType::kF16, hr::DType::kBF16, hr::DType::kQ8_0}) {
    GgufWriter w;
    LlamaGgufOptions o;
    o.dtype = dtype;
    o.with_tokenizer = dtype == hr::DType::kF32;
    AddLlamaGguf(w, c, 1, o);
    ok &= Write(out / "gguf" / ("tiny-" + std::string(hr::DTypeName(dtype)) + ".gguf"), w.Build());
  }
  {
    GgufWriter w;
    w.set_version(2);
    w.set_alignment(8);
    w.AddAlignmentKey();
    w.AddU8("u8", 1);
    w.AddI32("i32", -1);
    w.AddU64("u64", 1ull << 40);
    w.AddI64("i64", -5);
    w.AddF32("f32", 0.5f);
    w.AddF64("f64", 2.5);
    w.AddBool("b", true);
    w.AddString("s", "text");
    w.AddStringArray("sa", {"x", "yz"});
    w.AddF32Array("fa", {1, 2});
    w.AddI32Array("ia", {1, -2});
    w.AddTensorF32("v", {3}, {1, 2, 3});
    w.AddTensor("h", {2, 2}, kGgmlF16, EncodeTensorData(hr::DType::kF16, {1, 2, 3, 4}));
    ok &= Write(out / "gguf" / "all-types-v2.gguf", w.Build());
  }
  {
    GgufWriter w;
    ok &= Write(out / "gguf" / "empty-v3.gguf", w.Build());
  }

  // Safetensors.
  ok &= Write(out / "safetensors" / "mixed.safetensors",
              BuildSafetensors({
                  {"a", "F32", {2, 2}, EncodeTensorData(hr::DType::kF32, {1, 2, 3, 4})},
                  {"b", "F16", {3}, EncodeTensorData(hr::DType::kF16, {1, 2, 3})},
                  {"c", "BF16", {1, 1}, EncodeTensorData(hr::DType::kBF16, {1})},
                  {"s", "F32", {}, EncodeTensorData(hr::DType::kF32, {5})},
              }));
  ok &= Write(out / "safetensors" / "empty.safetensors", BuildSafetensorsRaw("{}", ""));
  ok &= Write(out / "safetensors" / "metadata.safetensors",
              BuildSafetensorsRaw(R"({"__metadata__":{"format":"pt","k":"v"}})", ""));
  for (int shards : {1, 2}) {
    const fs::path dir = out / ("hf-" + std::to_string(shards));
    fs::create_directories(dir);
    HfLlamaOptions o;
    o.shards = shards;
    o.dtype = shards == 1 ? "F32" : "BF16";
    ok &= WriteHfLlamaDir(dir.string(), c, 3, o).ok();
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".safetensors") {
        fs::copy_file(e.path(), out / "safetensors" / (dir.filename().string() + "-" + e.path().filename().string()),
                      fs::copy_options::overwrite_existing);
      }
    }
    fs::remove_all(dir);
  }
  std::printf("corpus written to %s\n", out.c_str());
  return ok ? 0 : 1;
}
