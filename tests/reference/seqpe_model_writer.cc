#include "tests/reference/seqpe_model_writer.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/splitmix64.h"
#include "tests/model_files/safetensors_writer.h"

namespace hr::testing {
namespace {

class Writer {
 public:
  Writer(uint64_t seed, const SeqPeWriteOptions& options) : rng_{seed}, options_(options) {}

  // Normal(mean, std) values (Box-Muller over splitmix64).
  void Add(const std::string& name, std::vector<int64_t> shape, float std, float mean = 0.0f) {
    if (name == options_.skip_tensor) return;
    if (name == options_.reshape_tensor) shape[0] += 1;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) {
      const double u1 = std::max(rng_.Uniform(), 1e-12), u2 = rng_.Uniform();
      x = mean + std * static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2));
    }
    std::string bytes(v.size() * sizeof(float), '\0');
    std::memcpy(bytes.data(), v.data(), bytes.size());
    tensors_.push_back(StTensor{name, "F32", shape, std::move(bytes)});
  }

  void Norm(const std::string& prefix, int64_t dim) {
    Add(prefix + ".weight", {dim}, 0.1f, 1.0f);
    Add(prefix + ".bias", {dim}, 0.1f);
  }
  void Linear(const std::string& prefix, int64_t out, int64_t in, float std) {
    Add(prefix + ".weight", {out, in}, std);
    Add(prefix + ".bias", {out}, 0.05f);
  }
  void Block(const std::string& prefix, int64_t dim, int64_t ffn) {
    Norm(prefix + ".attn_norm", dim);
    Linear(prefix + ".attn_qkv", 3 * dim, dim, 0.15f);
    Linear(prefix + ".attn_out", dim, dim, 0.15f);
    Norm(prefix + ".ffn_norm", dim);
    Linear(prefix + ".ffn_up", ffn, dim, 0.15f);
    Linear(prefix + ".ffn_down", dim, ffn, 0.15f);
  }

  std::vector<StTensor>& tensors() { return tensors_; }

 private:
  SplitMix64 rng_;
  const SeqPeWriteOptions& options_;
  std::vector<StTensor> tensors_;
};

}  // namespace

namespace {

SeqPeConfig BaseConfig() {
  SeqPeConfig c;
  c.vocab_size = 61;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.head_dim = 8;
  c.ffn_dim = 128;
  c.trained_context = 64;
  PositionEncoderConfig& e = c.encoder;
  e.base = 10;
  e.max_digits = 3;
  e.embed_dim = 24;
  e.n_heads = 3;
  e.n_layers = 2;
  e.ffn_dim = 96;
  return c;
}

}  // namespace

SeqPeConfig SeqPeTestConfig(const std::string& name) {
  SeqPeConfig c = BaseConfig();
  PositionEncoderConfig& e = c.encoder;
  if (name == "scalar_single") {
    c.apply = PeApply::kAttnScalar;
    c.qk_proj = PeQkProj::kSingle;
    c.multi_head = true;
    c.scalar_scale = 0.75f;
    e.out_dim = 16;
    e.temperature = 1.25f;
  } else if (name == "input_add") {
    c.apply = PeApply::kInputAdd;
    c.qk_proj = PeQkProj::kNone;
    c.multi_head = false;
    c.tied_embeddings = false;
    e.out_dim = 32;
    e.max_digits = 2;
    e.causal = false;
    e.mask_padding = true;
    e.final_layernorm = false;
  } else {  // scalar_none
    c.apply = PeApply::kAttnScalar;
    c.qk_proj = PeQkProj::kNone;
    c.multi_head = false;
    c.scalar_scale = 0.3f;  // pq·pk spans all 32 channels: keep the bias moderate
    e.out_dim = 32;
    e.mask_padding = true;
  }
  return c;
}

absl::Status WriteSeqPeModelDir(const std::string& dir, const SeqPeConfig& c, uint64_t seed,
                                const SeqPeWriteOptions& options) {
  namespace fs = std::filesystem;
  {
    std::ofstream out(fs::path(dir) / "config.json");
    out << SeqPeConfigToJson(c).dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat(dir, ": cannot write config.json"));
  }
  Writer w(seed, options);
  const PositionEncoderConfig& e = c.encoder;
  w.Add("tok_embd.weight", {c.vocab_size, c.dim}, 0.3f);
  for (int64_t i = 0; i < c.n_layers; ++i) w.Block(absl::StrCat("blk.", i), c.dim, c.ffn_dim);
  w.Norm("output_norm", c.dim);
  if (!c.tied_embeddings) w.Add("output.weight", {c.vocab_size, c.dim}, 0.3f);
  if (c.apply == PeApply::kAttnScalar && c.qk_proj == PeQkProj::kSingle) {
    w.Add("seqpe.pe_qk.weight", {2 * e.out_dim, e.out_dim}, 0.3f);
    w.Add("seqpe.pe_qk.bias", {2 * e.out_dim}, 0.1f);
  }
  w.Add("seqpe.digit_embd.weight", {e.base, e.embed_dim}, 0.5f);
  w.Add("seqpe.slot_embd.weight", {e.max_digits, e.embed_dim}, 0.5f);
  w.Add("seqpe.cls", {e.embed_dim}, 0.5f);
  for (int64_t i = 0; i < e.n_layers; ++i) {
    w.Block(absl::StrCat("seqpe.blk.", i), e.embed_dim, e.ffn_dim);
  }
  if (e.final_layernorm) w.Norm("seqpe.output_norm", e.embed_dim);
  w.Add("seqpe.out_proj.weight", {e.out_dim, e.embed_dim}, 0.3f);
  w.Add("seqpe.out_proj.bias", {e.out_dim}, 0.1f);
  if (!options.extra_tensor.empty()) w.Add(options.extra_tensor, {2}, 1.0f);

  std::ofstream out(fs::path(dir) / "model.safetensors", std::ios::binary);
  out << BuildSafetensors(w.tensors());
  if (!out) return absl::InternalError(absl::StrCat(dir, ": cannot write model.safetensors"));
  return absl::OkStatus();
}

}  // namespace hr::testing
