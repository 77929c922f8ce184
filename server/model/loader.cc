#include "server/model/loader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "server/common/status.h"
#include "server/model/dtype.h"
#include "server/model/gguf.h"
#include "server/model/json_file.h"
#include "server/model/safetensors.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A tensor as a container file describes it, before conversion.
struct RawTensor {
  std::string file;               // for error messages
  std::vector<int64_t> shape;     // PyTorch order: [rows, cols] or [n]
  bool ggml_order = false;        // the file stores dims reversed (GGUF)
  DType dtype = DType::kF32;
  const uint8_t* data = nullptr;
  uint64_t size_bytes = 0;
};

// Returns the named tensor, or NOT_FOUND naming the file and the tensor.
using TensorFinder = std::function<absl::StatusOr<RawTensor>(const std::string& name)>;

std::string FormatShape(std::vector<int64_t> shape, bool ggml_order) {
  if (ggml_order) {
    std::reverse(shape.begin(), shape.end());
    return absl::StrCat("ggml dims {", absl::StrJoin(shape, ", "), "}");
  }
  return absl::StrCat("shape [", absl::StrJoin(shape, ", "), "]");
}

// Loads tensor `name` as an F32 matrix of [rows, cols] (a vector of `cols`
// when `is_vector`): F32 data that is 4-byte aligned is used in place (the
// caller keeps the file in w.storage); anything else is converted and owned.
absl::StatusOr<Matrix> LoadMatrix(LlamaWeights& w, const TensorFinder& find,
                                  const std::string& name, int64_t rows, int64_t cols,
                                  bool is_vector = false) {
  HR_ASSIGN_OR_RETURN(RawTensor t, find(name));
  const std::vector<int64_t> expected =
      is_vector ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
  if (t.shape != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        t.file, ": tensor '", name, "': expected ", FormatShape(expected, t.ggml_order), ", got ",
        FormatShape(t.shape, t.ggml_order)));
  }
  const uint64_t n = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
  std::optional<uint64_t> bytes = DTypeBytes(t.dtype, n);
  HR_CHECK(bytes && *bytes == t.size_bytes, "tensor size was validated by the parser");
  if (t.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) {
    return Matrix{reinterpret_cast<const float*>(t.data), rows, cols};
  }
  std::vector<float> values(static_cast<size_t>(n));
  ConvertToF32(t.dtype, t.data, n, values.data());
  return w.Own(std::move(values), rows, cols);
}

// Hyper-parameters must be positive and small enough that products of two
// cannot overflow.
absl::Status CheckRange(const std::string& file, std::string_view key, int64_t value) {
  if (value <= 0 || value > (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": ", AV(key), " = ", value, " is out of range"));
  }
  return absl::OkStatus();
}

// Loads every tensor of the model given its config.
absl::Status LoadLlamaTensors(LlamaWeights& w, const TensorFinder& find,
                              const std::function<bool(const std::string&)>& has,
                              const std::string& embd, const std::string& output,
                              const std::string& output_norm,
                              const std::function<std::string(int64_t, std::string_view)>& layer,
                              bool force_tied) {
  const ModelConfig& c = w.config;
  const int64_t q_dim = c.n_heads * c.head_dim;
  const int64_t kv_dim = c.n_kv_heads * c.head_dim;
  HR_ASSIGN_OR_RETURN(w.tok_embd, LoadMatrix(w, find, embd, c.vocab_size, c.dim));
  // Layers are appended one by one, so an absurd layer count fails at the
  // first missing tensor instead of allocating.
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights l;
    HR_ASSIGN_OR_RETURN(l.attn_norm, LoadMatrix(w, find, layer(i, "attn_norm"), 1, c.dim, true));
    HR_ASSIGN_OR_RETURN(l.wq, LoadMatrix(w, find, layer(i, "wq"), q_dim, c.dim));
    HR_ASSIGN_OR_RETURN(l.wk, LoadMatrix(w, find, layer(i, "wk"), kv_dim, c.dim));
    HR_ASSIGN_OR_RETURN(l.wv, LoadMatrix(w, find, layer(i, "wv"), kv_dim, c.dim));
    HR_ASSIGN_OR_RETURN(l.wo, LoadMatrix(w, find, layer(i, "wo"), c.dim, q_dim));
    HR_ASSIGN_OR_RETURN(l.ffn_norm, LoadMatrix(w, find, layer(i, "ffn_norm"), 1, c.dim, true));
    HR_ASSIGN_OR_RETURN(l.w_gate, LoadMatrix(w, find, layer(i, "w_gate"), c.ffn_dim, c.dim));
    HR_ASSIGN_OR_RETURN(l.w_up, LoadMatrix(w, find, layer(i, "w_up"), c.ffn_dim, c.dim));
    HR_ASSIGN_OR_RETURN(l.w_down, LoadMatrix(w, find, layer(i, "w_down"), c.dim, c.ffn_dim));
    w.layers.push_back(l);
  }
  HR_ASSIGN_OR_RETURN(w.output_norm, LoadMatrix(w, find, output_norm, 1, c.dim, true));
  if (force_tied || !has(output)) {
    w.output = w.tok_embd;
    w.config.tied_embeddings = true;
  } else {
    HR_ASSIGN_OR_RETURN(w.output, LoadMatrix(w, find, output, c.vocab_size, c.dim));
    w.config.tied_embeddings = false;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- GGUF

absl::StatusOr<ModelConfig> GgufConfig(const GgufFile& g) {
  const std::string& file = g.name();
  ModelConfig c;
  HR_ASSIGN_OR_RETURN(std::string arch, g.GetString("general.architecture"));
  if (arch != "llama") {
    return absl::UnimplementedError(absl::StrCat(
        file, ": general.architecture '", arch, "' is not supported (only 'llama')"));
  }
  c.architecture = arch;
  auto get_int = [&](const char* key, int64_t* out) -> absl::Status {
    HR_ASSIGN_OR_RETURN(*out, g.GetInt(key));
    return CheckRange(file, key, *out);
  };
  HR_RETURN_IF_ERROR(get_int("llama.embedding_length", &c.dim));
  HR_RETURN_IF_ERROR(get_int("llama.block_count", &c.n_layers));
  HR_RETURN_IF_ERROR(get_int("llama.attention.head_count", &c.n_heads));
  c.n_kv_heads = c.n_heads;
  if (g.Has("llama.attention.head_count_kv")) {
    HR_RETURN_IF_ERROR(get_int("llama.attention.head_count_kv", &c.n_kv_heads));
  }
  HR_RETURN_IF_ERROR(get_int("llama.feed_forward_length", &c.ffn_dim));
  HR_RETURN_IF_ERROR(get_int("llama.context_length", &c.trained_context));
  if (c.dim % c.n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": llama.embedding_length ", c.dim,
                                                   " is not a multiple of the head count ",
                                                   c.n_heads));
  }
  c.head_dim = c.dim / c.n_heads;
  if (g.Has("llama.rope.dimension_count")) {
    HR_ASSIGN_OR_RETURN(int64_t rope_dims, g.GetInt("llama.rope.dimension_count"));
    if (rope_dims != c.head_dim) {
      return absl::UnimplementedError(absl::StrCat(
          file, ": llama.rope.dimension_count ", rope_dims, " != head dim ", c.head_dim,
          " (partial rotary embeddings are not supported)"));
    }
  }
  HR_ASSIGN_OR_RETURN(double eps, g.GetFloat("llama.attention.layer_norm_rms_epsilon"));
  c.rms_eps = static_cast<float>(eps);
  c.rope_theta = 10000.0f;
  if (g.Has("llama.rope.freq_base")) {
    HR_ASSIGN_OR_RETURN(double theta, g.GetFloat("llama.rope.freq_base"));
    c.rope_theta = static_cast<float>(theta);
  }
  c.rope_linear_scale = 1.0f;
  if (g.Has("llama.rope.scaling.type")) {
    HR_ASSIGN_OR_RETURN(std::string type, g.GetString("llama.rope.scaling.type"));
    if (type == "linear") {
      HR_ASSIGN_OR_RETURN(double factor, g.GetFloat("llama.rope.scaling.factor"));
      c.rope_linear_scale = static_cast<float>(factor);
    } else if (type != "none") {
      return absl::UnimplementedError(absl::StrCat(
          file, ": llama.rope.scaling.type '", type, "' is not supported (none, linear)"));
    }
  } else if (g.Has("llama.rope.scale_linear")) {  // older converters
    HR_ASSIGN_OR_RETURN(double factor, g.GetFloat("llama.rope.scale_linear"));
    c.rope_linear_scale = static_cast<float>(factor);
  }
  c.rope_style = RopeStyle::kAdjacent;

  const GgufTensorInfo* embd = g.FindTensor("token_embd.weight");
  if (embd == nullptr) {
    return absl::NotFoundError(absl::StrCat(file, ": tensor 'token_embd.weight' not found"));
  }
  if (embd->dims.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": tensor 'token_embd.weight': expected 2 dims, got ", embd->dims.size()));
  }
  c.vocab_size = embd->dims[1];
  HR_RETURN_IF_ERROR(CheckRange(file, "vocab size (token_embd.weight dims[1])", c.vocab_size));
  HR_RETURN_IF_ERROR(Annotate(c.Validate(), file));
  return c;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadGgufModel(const std::string& path) {
  HR_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> parsed, GgufFile::Open(path));
  std::shared_ptr<const GgufFile> gguf = std::move(parsed);
  LoadedModel model;
  LlamaWeights& w = model.weights;
  HR_ASSIGN_OR_RETURN(w.config, GgufConfig(*gguf));
  w.storage.push_back(gguf);

  TensorFinder find = [&](const std::string& name) -> absl::StatusOr<RawTensor> {
    const GgufTensorInfo* t = gguf->FindTensor(name);
    if (t == nullptr) {
      return absl::NotFoundError(absl::StrCat(path, ": tensor '", name, "' not found"));
    }
    RawTensor raw;
    raw.file = path;
    raw.shape.assign(t->dims.rbegin(), t->dims.rend());
    raw.ggml_order = true;
    raw.dtype = t->dtype;
    raw.data = t->data;
    raw.size_bytes = t->size_bytes;
    return raw;
  };
  auto has = [&](const std::string& name) { return gguf->FindTensor(name) != nullptr; };
  auto layer = [](int64_t i, std::string_view part) {
    static const std::map<std::string_view, const char*> kNames = {
        {"attn_norm", "attn_norm"}, {"wq", "attn_q"},        {"wk", "attn_k"},
        {"wv", "attn_v"},           {"wo", "attn_output"},   {"ffn_norm", "ffn_norm"},
        {"w_gate", "ffn_gate"},     {"w_up", "ffn_up"},      {"w_down", "ffn_down"}};
    return absl::StrCat("blk.", i, ".", kNames.at(part), ".weight");
  };
  HR_RETURN_IF_ERROR(LoadLlamaTensors(w, find, has, "token_embd.weight", "output.weight",
                                      "output_norm.weight", layer, /*force_tied=*/false));

  if (gguf->Has("tokenizer.ggml.model")) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadGgufTokenizer(*gguf);  // names the file
    if (!tok.ok()) return tok.status();
    model.tokenizer = std::move(tok).value();
  }
  HR_RETURN_IF_ERROR(CheckTokenizerFits(model.tokenizer.get(), model.weights.config.vocab_size, path));
  return model;
}

// ---------------------------------------------------------------- HF

namespace {

absl::StatusOr<ModelConfig> HfConfig(const std::string& path, const nlohmann::json& j) {
  ModelConfig c;
  bool is_llama = false;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array()) {
    for (const auto& a : *it) is_llama |= a.is_string() && a.get<std::string>() == "LlamaForCausalLM";
  }
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) {
    is_llama |= it->get<std::string>() == "llama";
  }
  if (!is_llama) {
    std::string what = j.contains("architectures") ? j["architectures"].dump() : "(none)";
    return absl::UnimplementedError(absl::StrCat(
        path, ": architecture ", what, " is not supported (LlamaForCausalLM / model_type llama)"));
  }
  if (auto it = j.find("hidden_act"); it != j.end() && !(it->is_string() && *it == "silu")) {
    return absl::UnimplementedError(
        absl::StrCat(path, ": hidden_act ", it->dump(), " is not supported (silu)"));
  }
  auto get_int = [&](const char* key, int64_t* out,
                     std::optional<int64_t> fallback = std::nullopt) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (!fallback) return absl::InvalidArgumentError(absl::StrCat(path, ": missing '", key, "'"));
      *out = *fallback;
      return absl::OkStatus();
    }
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' is not an integer"));
    }
    if (it->is_number_unsigned() &&
        it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return CheckRange(path, key, -1);
    }
    *out = it->get<int64_t>();
    return CheckRange(path, key, *out);
  };
  auto get_float = [&](const nlohmann::json& obj, const char* key, float* out,
                       std::optional<float> fallback) -> absl::Status {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
      if (!fallback) return absl::InvalidArgumentError(absl::StrCat(path, ": missing '", key, "'"));
      *out = *fallback;
      return absl::OkStatus();
    }
    if (!it->is_number()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' is not a number"));
    }
    *out = it->get<float>();
    return absl::OkStatus();
  };
  HR_RETURN_IF_ERROR(get_int("hidden_size", &c.dim));
  HR_RETURN_IF_ERROR(get_int("num_hidden_layers", &c.n_layers));
  HR_RETURN_IF_ERROR(get_int("num_attention_heads", &c.n_heads));
  HR_RETURN_IF_ERROR(get_int("num_key_value_heads", &c.n_kv_heads, c.n_heads));
  HR_RETURN_IF_ERROR(get_int("intermediate_size", &c.ffn_dim));
  HR_RETURN_IF_ERROR(get_int("vocab_size", &c.vocab_size));
  HR_RETURN_IF_ERROR(get_int("max_position_embeddings", &c.trained_context));
  if (c.dim % c.n_heads != 0 && !j.contains("head_dim")) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": hidden_size ", c.dim,
                                                   " is not a multiple of num_attention_heads ",
                                                   c.n_heads));
  }
  HR_RETURN_IF_ERROR(get_int("head_dim", &c.head_dim, c.dim / c.n_heads));
  HR_RETURN_IF_ERROR(get_float(j, "rms_norm_eps", &c.rms_eps, 1e-6f));
  HR_RETURN_IF_ERROR(get_float(j, "rope_theta", &c.rope_theta, 10000.0f));
  c.rope_linear_scale = 1.0f;
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": rope_scaling is not an object"));
    }
    std::string type;
    for (const char* key : {"type", "rope_type"}) {
      if (auto t = it->find(key); t != it->end() && t->is_string()) type = t->get<std::string>();
    }
    if (type == "linear") {
      HR_RETURN_IF_ERROR(get_float(*it, "factor", &c.rope_linear_scale, std::nullopt));
    } else if (type != "default") {
      return absl::UnimplementedError(absl::StrCat(path, ": rope_scaling type '", type,
                                                   "' is not supported (linear)"));
    }
  }
  c.tied_embeddings = false;
  if (auto it = j.find("tie_word_embeddings"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tie_word_embeddings is not a boolean"));
    }
    c.tied_embeddings = it->get<bool>();
  }
  c.rope_style = RopeStyle::kNeoX;
  c.architecture = "llama";
  HR_RETURN_IF_ERROR(Annotate(c.Validate(), path));
  return c;
}

// Shard names come from a file: keep them inside the model directory.
bool IsPlainRelativePath(const std::string& name) {
  if (name.empty()) return false;
  fs::path p(name);
  if (p.is_absolute()) return false;
  for (const auto& part : p) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadHfModel(const std::string& directory) {
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    return absl::NotFoundError(absl::StrCat(directory, ": not a directory"));
  }
  const fs::path dir(directory);
  const std::string config_path = (dir / "config.json").string();
  HR_ASSIGN_OR_RETURN(nlohmann::json config_json, ReadJsonFile(config_path));
  LoadedModel model;
  LlamaWeights& w = model.weights;
  HR_ASSIGN_OR_RETURN(w.config, HfConfig(config_path, config_json));
  const bool tie = w.config.tied_embeddings;

  // Open the shard(s) and index their tensors by name.
  std::vector<std::string> shard_names;
  std::string weights_file;  // named in "tensor not found" errors
  const std::string single = (dir / "model.safetensors").string();
  const std::string index_path = (dir / "model.safetensors.index.json").string();
  if (fs::exists(single, ec)) {
    shard_names.push_back("model.safetensors");
    weights_file = single;
  } else if (fs::exists(index_path, ec)) {
    HR_ASSIGN_OR_RETURN(nlohmann::json index, ReadJsonFile(index_path));
    auto map = index.find("weight_map");
    if (map == index.end() || !map->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": missing 'weight_map' object"));
    }
    std::set<std::string> seen;
    for (auto it = map->begin(); it != map->end(); ++it) {
      if (!it->is_string() || !IsPlainRelativePath(it->get<std::string>())) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, ": tensor '", it.key(),
                                                       "': shard must be a relative file name"));
      }
      if (seen.insert(it->get<std::string>()).second) shard_names.push_back(it->get<std::string>());
    }
    weights_file = index_path;
  } else {
    return absl::NotFoundError(absl::StrCat(
        directory, ": neither model.safetensors nor model.safetensors.index.json found"));
  }

  std::map<std::string, std::pair<const SafetensorsFile*, const SafetensorsTensor*>> by_name;
  for (const std::string& shard : shard_names) {
    HR_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> parsed,
                        SafetensorsFile::Open((dir / shard).string()));
    std::shared_ptr<const SafetensorsFile> file = std::move(parsed);
    w.storage.push_back(file);
    for (const SafetensorsTensor& t : file->tensors()) {
      auto [it, inserted] = by_name.emplace(t.name, std::make_pair(file.get(), &t));
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(file->name(), ": tensor '", t.name,
                                                       "' also appears in ",
                                                       it->second.first->name()));
      }
    }
  }

  TensorFinder find = [&](const std::string& name) -> absl::StatusOr<RawTensor> {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::NotFoundError(absl::StrCat(weights_file, ": tensor '", name, "' not found"));
    }
    const SafetensorsTensor* t = it->second.second;
    RawTensor raw;
    raw.file = it->second.first->name();
    raw.shape = t->shape;
    raw.dtype = t->dtype;
    raw.data = t->data;
    raw.size_bytes = t->size_bytes;
    return raw;
  };
  auto has = [&](const std::string& name) { return by_name.count(name) != 0; };
  auto layer = [](int64_t i, std::string_view part) {
    static const std::map<std::string_view, const char*> kNames = {
        {"attn_norm", "input_layernorm"},
        {"wq", "self_attn.q_proj"},
        {"wk", "self_attn.k_proj"},
        {"wv", "self_attn.v_proj"},
        {"wo", "self_attn.o_proj"},
        {"ffn_norm", "post_attention_layernorm"},
        {"w_gate", "mlp.gate_proj"},
        {"w_up", "mlp.up_proj"},
        {"w_down", "mlp.down_proj"}};
    return absl::StrCat("model.layers.", i, ".", kNames.at(part), ".weight");
  };
  HR_RETURN_IF_ERROR(LoadLlamaTensors(w, find, has, "model.embed_tokens.weight", "lm_head.weight",
                                      "model.norm.weight", layer, /*force_tied=*/tie));

  const std::string tokenizer_path = (dir / "tokenizer.model").string();
  if (fs::exists(tokenizer_path, ec)) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadSentencePieceTokenizer(tokenizer_path);
    if (!tok.ok()) return tok.status();
    model.tokenizer = std::move(tok).value();
  }
  HR_RETURN_IF_ERROR(
      CheckTokenizerFits(model.tokenizer.get(), model.weights.config.vocab_size, tokenizer_path));
  return model;
}

absl::StatusOr<LoadedModel> LoadModel(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return absl::NotFoundError(absl::StrCat(path, ": not found"));
  if (fs::is_directory(st)) return LoadHfModel(path);
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open"));
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return LoadGgufModel(path);
  if (fs::path(path).extension() == ".safetensors") {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": a safetensors file alone has no config: pass its directory (with config.json)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a GGUF file (bad magic at offset 0) nor a model directory"));
}

}  // namespace hr
