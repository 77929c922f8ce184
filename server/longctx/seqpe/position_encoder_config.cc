#include "server/longctx/seqpe/position_encoder_config.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace hr {

int64_t PositionEncoderConfig::PositionBudget() const {
  int64_t budget = 1;
  for (int64_t i = 0; i < max_digits; ++i) {
    if (budget > std::numeric_limits<int64_t>::max() / base) {
      return std::numeric_limits<int64_t>::max();
    }
    budget *= base;
  }
  return budget;
}

absl::Status PositionEncoderConfig::Validate() const {
  auto bad = [](absl::string_view field, double value, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("seqpe config: ", field, " = ", value, ": ", why));
  };
  if (base < 2 || base > 36) return bad("base", base, "must be in [2, 36]");
  if (max_digits < 1 || max_digits > 18) return bad("max_digits", max_digits, "must be in [1, 18]");
  if (embed_dim <= 0) return bad("embed_dim", embed_dim, "must be positive");
  if (n_heads <= 0 || embed_dim % n_heads != 0) {
    return bad("n_heads", n_heads, "must be positive and divide embed_dim");
  }
  if (n_layers < 0) return bad("n_layers", n_layers, "must not be negative");
  if (ffn_dim <= 0) return bad("ffn_dim", ffn_dim, "must be positive");
  if (out_dim <= 0) return bad("out_dim", out_dim, "must be positive");
  if (!(layer_norm_eps > 0.0f)) return bad("layer_norm_eps", layer_norm_eps, "must be positive");
  if (!(temperature > 0.0f)) return bad("temperature", temperature, "must be positive");
  return absl::OkStatus();
}

}  // namespace hr
