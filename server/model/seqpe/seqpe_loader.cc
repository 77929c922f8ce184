#include "server/model/seqpe/seqpe_loader.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/status.h"
#include "server/model/dtype.h"
#include "server/model/json_file.h"
#include "server/model/safetensors.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

// Reads tensors by name from one safetensors file and records which were used.
class TensorSource {
 public:
  TensorSource(const SafetensorsFile* file, SeqPeWeights* w) : file_(file), w_(w) {}

  // The tensor as F32 with exactly `shape` (PyTorch order): in place when
  // F32 and aligned, else converted into owned storage.
  absl::StatusOr<Matrix> Get(const std::string& name, std::vector<int64_t> shape) {
    const SafetensorsTensor* t = file_->FindTensor(name);
    if (t == nullptr) {
      return absl::NotFoundError(absl::StrCat(file_->name(), ": tensor '", name, "' not found"));
    }
    if (t->shape != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_->name(), ": tensor '", name, "': expected shape [",
                       absl::StrJoin(shape, ", "), "], got [", absl::StrJoin(t->shape, ", "), "]"));
    }
    used_.insert(name);
    int64_t rows = 1, cols = 1;
    if (shape.size() == 2) {
      rows = shape[0];
      cols = shape[1];
    } else {
      for (int64_t d : shape) cols *= d;
    }
    const uint64_t n = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
    if (t->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      return Matrix{reinterpret_cast<const float*>(t->data), rows, cols};
    }
    std::vector<float> values(static_cast<size_t>(n));
    ConvertToF32(t->dtype, t->data, n, values.data());
    return w_->Own(std::move(values), rows, cols);
  }

  absl::StatusOr<Linear> GetLinear(const std::string& prefix, int64_t out, int64_t in) {
    Linear l;
    HR_ASSIGN_OR_RETURN(l.w, Get(prefix + ".weight", {out, in}));
    HR_ASSIGN_OR_RETURN(l.b, Get(prefix + ".bias", {out}));
    return l;
  }

  absl::StatusOr<LayerNormWeights> GetNorm(const std::string& prefix, int64_t dim) {
    LayerNormWeights n;
    HR_ASSIGN_OR_RETURN(n.w, Get(prefix + ".weight", {dim}));
    HR_ASSIGN_OR_RETURN(n.b, Get(prefix + ".bias", {dim}));
    return n;
  }

  absl::StatusOr<Gpt2BlockWeights> GetBlock(const std::string& prefix, int64_t dim,
                                            int64_t ffn_dim) {
    Gpt2BlockWeights b;
    HR_ASSIGN_OR_RETURN(b.ln1, GetNorm(prefix + ".attn_norm", dim));
    HR_ASSIGN_OR_RETURN(b.attn_qkv, GetLinear(prefix + ".attn_qkv", 3 * dim, dim));
    HR_ASSIGN_OR_RETURN(b.attn_out, GetLinear(prefix + ".attn_out", dim, dim));
    HR_ASSIGN_OR_RETURN(b.ln2, GetNorm(prefix + ".ffn_norm", dim));
    HR_ASSIGN_OR_RETURN(b.ffn_up, GetLinear(prefix + ".ffn_up", ffn_dim, dim));
    HR_ASSIGN_OR_RETURN(b.ffn_down, GetLinear(prefix + ".ffn_down", dim, ffn_dim));
    return b;
  }

  // INVALID_ARGUMENT naming the first tensor the config did not use.
  absl::Status CheckAllUsed() const {
    for (const SafetensorsTensor& t : file_->tensors()) {
      if (used_.count(t.name) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(file_->name(), ": tensor '", t.name,
                         "' is not used by the model its config describes"));
      }
    }
    return absl::OkStatus();
  }

 private:
  const SafetensorsFile* file_;
  SeqPeWeights* w_;
  std::set<std::string> used_;
};

}  // namespace

bool IsSeqPeModelDir(const std::string& directory) {
  absl::StatusOr<nlohmann::json> j = ReadJsonFile((fs::path(directory) / "config.json").string());
  if (!j.ok()) return false;
  auto it = j->find("architecture");
  return it != j->end() && it->is_string() && *it == "gpt2_seqpe";
}

absl::StatusOr<SeqPeWeights> LoadSeqPeModel(const std::string& directory) {
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    return absl::NotFoundError(absl::StrCat(directory, ": not a directory"));
  }
  const fs::path dir(directory);
  const std::string config_path = (dir / "config.json").string();
  HR_ASSIGN_OR_RETURN(nlohmann::json config_json, ReadJsonFile(config_path));
  SeqPeWeights w;
  HR_ASSIGN_OR_RETURN(w.config, ParseSeqPeConfig(config_json, config_path));
  const SeqPeConfig& c = w.config;

  HR_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> parsed,
                      SafetensorsFile::Open((dir / "model.safetensors").string()));
  std::shared_ptr<const SafetensorsFile> file = std::move(parsed);
  w.storage.push_back(file);
  TensorSource src(file.get(), &w);

  HR_ASSIGN_OR_RETURN(w.tok_embd, src.Get("tok_embd.weight", {c.vocab_size, c.dim}));
  // Layers are appended one by one, so an absurd layer count fails at the
  // first missing tensor instead of allocating.
  for (int64_t i = 0; i < c.n_layers; ++i) {
    HR_ASSIGN_OR_RETURN(Gpt2BlockWeights b,
                        src.GetBlock(absl::StrCat("blk.", i), c.dim, c.ffn_dim));
    w.blocks.push_back(b);
  }
  HR_ASSIGN_OR_RETURN(w.output_norm, src.GetNorm("output_norm", c.dim));
  if (c.tied_embeddings) {
    w.output = w.tok_embd;
  } else {
    HR_ASSIGN_OR_RETURN(w.output, src.Get("output.weight", {c.vocab_size, c.dim}));
  }

  const PositionEncoderConfig& e = c.encoder;
  if (c.apply == PeApply::kAttnScalar && c.qk_proj == PeQkProj::kSingle) {
    HR_ASSIGN_OR_RETURN(w.pe_qk, src.GetLinear("seqpe.pe_qk", 2 * e.out_dim, e.out_dim));
  }
  PositionEncoderWeights& pe = w.encoder;
  HR_ASSIGN_OR_RETURN(pe.digit_embd, src.Get("seqpe.digit_embd.weight", {e.base, e.embed_dim}));
  HR_ASSIGN_OR_RETURN(pe.slot_embd, src.Get("seqpe.slot_embd.weight", {e.max_digits, e.embed_dim}));
  HR_ASSIGN_OR_RETURN(pe.cls, src.Get("seqpe.cls", {e.embed_dim}));
  for (int64_t i = 0; i < e.n_layers; ++i) {
    HR_ASSIGN_OR_RETURN(Gpt2BlockWeights b,
                        src.GetBlock(absl::StrCat("seqpe.blk.", i), e.embed_dim, e.ffn_dim));
    pe.blocks.push_back(b);
  }
  if (e.final_layernorm) {
    HR_ASSIGN_OR_RETURN(pe.final_norm, src.GetNorm("seqpe.output_norm", e.embed_dim));
  }
  HR_ASSIGN_OR_RETURN(pe.out_proj, src.GetLinear("seqpe.out_proj", e.out_dim, e.embed_dim));
  HR_RETURN_IF_ERROR(src.CheckAllUsed());
  return w;
}

}  // namespace hr
