#include "server/model/seqpe/seqpe_config.h"

#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/common/status.h"

namespace hr {

absl::Status SeqPeConfig::Validate() const {
  auto bad = [](absl::string_view field, int64_t value, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: ", field, " = ", value, ": ", why));
  };
  if (vocab_size <= 0) return bad("vocab_size", vocab_size, "must be positive");
  if (dim <= 0) return bad("dim", dim, "must be positive");
  if (n_layers <= 0) return bad("n_layers", n_layers, "must be positive");
  if (n_heads <= 0 || dim % n_heads != 0) return bad("n_heads", n_heads, "must divide dim");
  if (head_dim != dim / n_heads) return bad("head_dim", head_dim, "must be dim / n_heads");
  if (ffn_dim <= 0) return bad("ffn_dim", ffn_dim, "must be positive");
  if (!(layer_norm_eps > 0.0f)) {
    return absl::InvalidArgumentError("model config: layer_norm_eps must be positive");
  }
  HR_RETURN_IF_ERROR(encoder.Validate());
  const int64_t p = encoder.out_dim;
  if (apply == PeApply::kInputAdd) {
    if (p != dim) return bad("seqpe.encoder.out_dim", p, "input_add needs out_dim == dim");
    if (multi_head) {
      return absl::InvalidArgumentError("model config: seqpe.multi_head needs apply attn_scalar");
    }
  } else {
    if (qk_proj == PeQkProj::kNone && p != dim) {
      return bad("seqpe.encoder.out_dim", p, "qk_proj none needs out_dim == dim");
    }
    if (multi_head && p % n_heads != 0) {
      return bad("seqpe.encoder.out_dim", p, "multi_head needs a multiple of n_heads");
    }
  }
  return absl::OkStatus();
}

namespace {

class JsonReader {
 public:
  explicit JsonReader(const std::string& path) : path_(path) {}

  absl::Status Int(const nlohmann::json& obj, const char* key, int64_t* out,
                   std::optional<int64_t> fallback = std::nullopt) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return Missing(key, fallback, out);
    if (!it->is_number_integer() ||
        (it->is_number_unsigned() &&
         it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": '", key, "' is not an integer in range"));
    }
    *out = it->get<int64_t>();
    if (*out < -1 || *out > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": '", key, "' = ", *out, " is out of range"));
    }
    return absl::OkStatus();
  }

  absl::Status Float(const nlohmann::json& obj, const char* key, float* out,
                     std::optional<float> fallback = std::nullopt) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return Missing(key, fallback, out);
    if (!it->is_number()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": '", key, "' is not a number"));
    }
    *out = it->get<float>();
    return absl::OkStatus();
  }

  absl::Status Bool(const nlohmann::json& obj, const char* key, bool* out,
                    std::optional<bool> fallback = std::nullopt) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return Missing(key, fallback, out);
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": '", key, "' is not a boolean"));
    }
    *out = it->get<bool>();
    return absl::OkStatus();
  }

  absl::Status String(const nlohmann::json& obj, const char* key, std::string* out,
                      std::optional<std::string> fallback = std::nullopt) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return Missing(key, fallback, out);
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": '", key, "' is not a string"));
    }
    *out = it->get<std::string>();
    return absl::OkStatus();
  }

  absl::StatusOr<const nlohmann::json*> Object(const nlohmann::json& obj, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": missing object '", key, "'"));
    }
    return &*it;
  }

  absl::Status Unsupported(const char* key, const std::string& value, const char* supported) const {
    return absl::UnimplementedError(
        absl::StrCat(path_, ": '", key, "' = \"", value, "\" is not supported (", supported, ")"));
  }

 private:
  template <typename T>
  absl::Status Missing(const char* key, const std::optional<T>& fallback, T* out) const {
    if (!fallback) return absl::InvalidArgumentError(absl::StrCat(path_, ": missing '", key, "'"));
    *out = *fallback;
    return absl::OkStatus();
  }

  const std::string& path_;
};

}  // namespace

absl::StatusOr<SeqPeConfig> ParseSeqPeConfig(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  const JsonReader r(path);
  SeqPeConfig c;
  std::string s;
  HR_RETURN_IF_ERROR(r.String(j, "architecture", &s));
  if (s != "gpt2_seqpe") return r.Unsupported("architecture", s, "gpt2_seqpe");
  HR_RETURN_IF_ERROR(r.Int(j, "vocab_size", &c.vocab_size));
  HR_RETURN_IF_ERROR(r.Int(j, "dim", &c.dim));
  HR_RETURN_IF_ERROR(r.Int(j, "n_layers", &c.n_layers));
  HR_RETURN_IF_ERROR(r.Int(j, "n_heads", &c.n_heads));
  HR_RETURN_IF_ERROR(r.Int(j, "ffn_dim", &c.ffn_dim));
  HR_RETURN_IF_ERROR(r.Float(j, "layer_norm_eps", &c.layer_norm_eps, 1e-5f));
  HR_RETURN_IF_ERROR(r.String(j, "activation", &s, "gelu_tanh"));
  if (s != "gelu_tanh") return r.Unsupported("activation", s, "gelu_tanh");
  HR_RETURN_IF_ERROR(r.Int(j, "trained_context", &c.trained_context, 0));
  HR_RETURN_IF_ERROR(r.Bool(j, "tied_embeddings", &c.tied_embeddings, true));
  if (c.n_heads > 0) c.head_dim = c.dim / c.n_heads;

  HR_ASSIGN_OR_RETURN(const nlohmann::json* pe, r.Object(j, "seqpe"));
  HR_RETURN_IF_ERROR(r.String(*pe, "apply", &s));
  if (s == "attn_scalar") {
    c.apply = PeApply::kAttnScalar;
  } else if (s == "input_add") {
    c.apply = PeApply::kInputAdd;
  } else {
    return r.Unsupported("seqpe.apply", s, "attn_scalar, input_add");
  }
  const bool scalar = c.apply == PeApply::kAttnScalar;
  HR_RETURN_IF_ERROR(
      r.String(*pe, "qk_proj", &s, scalar ? std::nullopt : std::optional<std::string>("none")));
  if (s == "single") {
    c.qk_proj = PeQkProj::kSingle;
  } else if (s == "none") {
    c.qk_proj = PeQkProj::kNone;
  } else {
    return r.Unsupported("seqpe.qk_proj", s, "single, none");
  }
  if (!scalar && c.qk_proj != PeQkProj::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": seqpe.qk_proj needs attn_scalar"));
  }
  HR_RETURN_IF_ERROR(
      r.Bool(*pe, "multi_head", &c.multi_head, scalar ? std::nullopt : std::optional<bool>(false)));
  HR_RETURN_IF_ERROR(r.Float(*pe, "scalar_scale", &c.scalar_scale, 1.0f));

  HR_ASSIGN_OR_RETURN(const nlohmann::json* enc, r.Object(*pe, "encoder"));
  PositionEncoderConfig& e = c.encoder;
  HR_RETURN_IF_ERROR(r.Int(*enc, "base", &e.base, 10));
  HR_RETURN_IF_ERROR(r.Int(*enc, "max_digits", &e.max_digits));
  HR_RETURN_IF_ERROR(r.Int(*enc, "embed_dim", &e.embed_dim));
  HR_RETURN_IF_ERROR(r.Int(*enc, "n_heads", &e.n_heads));
  HR_RETURN_IF_ERROR(r.Int(*enc, "n_layers", &e.n_layers));
  HR_RETURN_IF_ERROR(r.Int(*enc, "ffn_dim", &e.ffn_dim));
  HR_RETURN_IF_ERROR(r.String(*enc, "attn_direction", &s, "causal"));
  if (s != "causal" && s != "bi")
    return r.Unsupported("seqpe.encoder.attn_direction", s, "causal, bi");
  e.causal = s == "causal";
  HR_RETURN_IF_ERROR(r.Bool(*enc, "mask_padding", &e.mask_padding, false));
  HR_RETURN_IF_ERROR(r.Bool(*enc, "final_layernorm", &e.final_layernorm, true));
  HR_RETURN_IF_ERROR(r.Float(*enc, "layer_norm_eps", &e.layer_norm_eps, 1e-5f));
  HR_RETURN_IF_ERROR(r.Int(*enc, "out_dim", &e.out_dim));
  HR_RETURN_IF_ERROR(r.Float(*enc, "temperature", &e.temperature, 1.0f));
  HR_RETURN_IF_ERROR(Annotate(c.Validate(), path));
  return c;
}

nlohmann::json SeqPeConfigToJson(const SeqPeConfig& c) {
  const PositionEncoderConfig& e = c.encoder;
  nlohmann::json j = {{"architecture", "gpt2_seqpe"},
                      {"vocab_size", c.vocab_size},
                      {"dim", c.dim},
                      {"n_layers", c.n_layers},
                      {"n_heads", c.n_heads},
                      {"ffn_dim", c.ffn_dim},
                      {"layer_norm_eps", c.layer_norm_eps},
                      {"activation", "gelu_tanh"},
                      {"trained_context", c.trained_context},
                      {"tied_embeddings", c.tied_embeddings},
                      {"seqpe",
                       {{"apply", c.apply == PeApply::kAttnScalar ? "attn_scalar" : "input_add"},
                        {"qk_proj", c.qk_proj == PeQkProj::kSingle ? "single" : "none"},
                        {"multi_head", c.multi_head},
                        {"scalar_scale", c.scalar_scale},
                        {"encoder",
                         {{"base", e.base},
                          {"max_digits", e.max_digits},
                          {"embed_dim", e.embed_dim},
                          {"n_heads", e.n_heads},
                          {"n_layers", e.n_layers},
                          {"ffn_dim", e.ffn_dim},
                          {"attn_direction", e.causal ? "causal" : "bi"},
                          {"mask_padding", e.mask_padding},
                          {"final_layernorm", e.final_layernorm},
                          {"layer_norm_eps", e.layer_norm_eps},
                          {"out_dim", e.out_dim},
                          {"temperature", e.temperature}}}}}};
  return j;
}

}  // namespace hr
