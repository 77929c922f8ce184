#include "tests/model_files/safetensors_writer.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/model/dtype.h"
#include "tests/model_files/gguf_writer.h"

namespace hr::testing {

std::string BuildSafetensorsRaw(const std::string& header_json, const std::string& data) {
  std::string out;
  PutU64(out, header_json.size());
  out += header_json;
  out += data;
  return out;
}

std::string BuildSafetensors(const std::vector<StTensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const StTensor& t : tensors) {
    const uint64_t begin = data.size();
    data += t.data;
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {begin, static_cast<uint64_t>(data.size())}}};
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  return BuildSafetensorsRaw(text, data);
}

absl::Status WriteHfLlamaDir(const std::string& dir, const ModelConfig& c, uint64_t seed,
                             const HfLlamaOptions& options) {
  namespace fs = std::filesystem;
  if (options.write_config) {
    nlohmann::json config = {
        {"architectures", {options.architecture}},
        {"model_type", options.architecture == "LlamaForCausalLM" ? "llama" : "other"},
        {"hidden_size", c.dim},
        {"num_hidden_layers", c.n_layers},
        {"num_attention_heads", c.n_heads},
        {"num_key_value_heads", c.n_kv_heads},
        {"intermediate_size", c.ffn_dim},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.trained_context},
        {"rms_norm_eps", c.rms_eps},
        {"rope_theta", c.rope_theta},
        {"hidden_act", "silu"},
        {"tie_word_embeddings", options.tied},
        {"torch_dtype", "float32"},
    };
    if (c.rope_linear_scale != 1.0f) {
      config["rope_scaling"] = {{"type", "linear"}, {"factor", c.rope_linear_scale}};
    } else {
      config["rope_scaling"] = nullptr;
    }
    if (!WriteFile((fs::path(dir) / "config.json").string(), config.dump(2))) {
      return absl::InternalError(absl::StrCat("cannot write ", dir, "/config.json"));
    }
  }

  DType dtype = DType::kF32;
  if (options.dtype == "F16") dtype = DType::kF16;
  if (options.dtype == "BF16") dtype = DType::kBF16;
  std::vector<StTensor> tensors;
  uint64_t n = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool is_norm) {
    ++n;
    if (name == options.skip_tensor) return;
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    std::vector<float> values = PseudoRandom(seed + n, count);
    if (is_norm) {
      for (float& v : values) v = 1.0f + 0.1f * v;
    }
    if (name == options.reshape_tensor) {
      if (shape.size() == 2 && shape[0] != shape[1]) {
        std::swap(shape[0], shape[1]);
      } else {
        shape.back() += 1;
        values.resize(values.size() / (shape.back() - 1) * shape.back(), 0.5f);
      }
    }
    const DType t = is_norm ? DType::kF32 : dtype;
    tensors.push_back({name, std::string(DTypeName(t)), shape, EncodeTensorData(t, values)});
  };
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  add("model.embed_tokens.weight", {c.vocab_size, c.dim}, false);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    add(p + "input_layernorm.weight", {c.dim}, true);
    add(p + "self_attn.q_proj.weight", {q, c.dim}, false);
    add(p + "self_attn.k_proj.weight", {kv, c.dim}, false);
    add(p + "self_attn.v_proj.weight", {kv, c.dim}, false);
    add(p + "self_attn.o_proj.weight", {c.dim, q}, false);
    add(p + "post_attention_layernorm.weight", {c.dim}, true);
    add(p + "mlp.gate_proj.weight", {c.ffn_dim, c.dim}, false);
    add(p + "mlp.up_proj.weight", {c.ffn_dim, c.dim}, false);
    add(p + "mlp.down_proj.weight", {c.dim, c.ffn_dim}, false);
  }
  add("model.norm.weight", {c.dim}, true);
  if (!options.tied) add("lm_head.weight", {c.vocab_size, c.dim}, false);

  if (options.shards <= 1) {
    if (!WriteFile((fs::path(dir) / "model.safetensors").string(), BuildSafetensors(tensors))) {
      return absl::InternalError(absl::StrCat("cannot write ", dir, "/model.safetensors"));
    }
    return absl::OkStatus();
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  const size_t per_shard = (tensors.size() + options.shards - 1) / options.shards;
  for (int s = 0; s < options.shards; ++s) {
    const std::string shard_name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, options.shards);
    std::vector<StTensor> part;
    for (size_t i = s * per_shard; i < std::min(tensors.size(), (s + 1) * per_shard); ++i) {
      part.push_back(tensors[i]);
      index["weight_map"][tensors[i].name] = shard_name;
    }
    if (!WriteFile((fs::path(dir) / shard_name).string(), BuildSafetensors(part))) {
      return absl::InternalError(absl::StrCat("cannot write ", shard_name));
    }
  }
  if (!WriteFile((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(2))) {
    return absl::InternalError("cannot write the index");
  }
  return absl::OkStatus();
}

}  // namespace hr::testing
