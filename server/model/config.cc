#include "server/model/config.h"

#include "absl/strings/str_cat.h"

namespace hr {

absl::Status ModelConfig::Validate() const {
  auto bad = [](absl::string_view field, int64_t value, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("model config: ", field, " = ", value, ": ", why));
  };
  if (dim <= 0) return bad("dim", dim, "must be positive");
  if (n_layers <= 0) return bad("n_layers", n_layers, "must be positive");
  if (n_heads <= 0) return bad("n_heads", n_heads, "must be positive");
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) {
    return bad("n_kv_heads", n_kv_heads, "must divide n_heads");
  }
  if (head_dim <= 0 || head_dim % 2 != 0) return bad("head_dim", head_dim, "must be positive and even");
  if (ffn_dim <= 0) return bad("ffn_dim", ffn_dim, "must be positive");
  if (vocab_size <= 0) return bad("vocab_size", vocab_size, "must be positive");
  if (!(rms_eps > 0.0f)) return absl::InvalidArgumentError("model config: rms_eps must be positive");
  if (!(rope_theta > 0.0f)) return absl::InvalidArgumentError("model config: rope_theta must be positive");
  if (!(rope_linear_scale > 0.0f)) {
    return absl::InvalidArgumentError("model config: rope_linear_scale must be positive");
  }
  return absl::OkStatus();
}

}  // namespace hr
