#include "server/model/batch_layout.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hr {

absl::StatusOr<BatchLayout> LayOutBatch(std::span<const BatchEntry> batch, int64_t vocab_size) {
  BatchLayout layout;
  layout.offset.assign(batch.size() + 1, 0);
  for (size_t e = 0; e < batch.size(); ++e) {
    const BatchEntry& entry = batch[e];
    if (entry.tokens.empty() || entry.sequence == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("batch entry ", e, " has no tokens"));
    }
    for (int32_t t : entry.tokens) {
      if (t < 0 || t >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", t, " outside the vocabulary [0, ", vocab_size, ")"));
      }
    }
    const auto n = static_cast<int64_t>(entry.tokens.size());
    layout.offset[e + 1] = layout.offset[e] + n;
    layout.n_logit_rows += entry.all_logits ? n : 1;
    layout.max_end = std::max(layout.max_end, entry.sequence->length() + n);
  }
  layout.n_tokens = layout.offset.back();
  return layout;
}

void GatherLogitRows(std::span<const BatchEntry> batch, const BatchLayout& layout, const float* x,
                     int64_t dim, float* out) {
  int64_t row = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    const int64_t first = batch[e].all_logits ? layout.offset[e] : layout.offset[e + 1] - 1;
    for (int64_t i = first; i < layout.offset[e + 1]; ++i, ++row) {
      std::memcpy(out + row * dim, x + i * dim, sizeof(float) * dim);
    }
  }
}

}  // namespace hr
