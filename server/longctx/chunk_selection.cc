#include "server/longctx/chunk_selection.h"

#include <algorithm>
#include <cmath>

namespace hr {

bool NeedsScores(const LongContextParams& params, int64_t c) {
  return params.policy == AttentionPolicy::kLongHeads && c >= params.slots();
}

void SelectChunks(const LongContextParams& params, int64_t c, const float* scores,
                  std::vector<int32_t>* chunks) {
  chunks->clear();
  const int64_t k = params.slots();
  if (params.policy == AttentionPolicy::kFull || c < k) {
    for (int64_t j = 0; j <= c; ++j) chunks->push_back(static_cast<int32_t>(j));
    return;
  }
  if (params.policy == AttentionPolicy::kWindow) {
    chunks->push_back(0);
    for (int64_t j = c - k + 2; j <= c; ++j) chunks->push_back(static_cast<int32_t>(j));
    return;
  }
  // LongHeads: the k-3 best of chunks 1 .. c-2 (higher score, then lower index).
  chunks->push_back(0);
  for (int64_t j = 1; j <= c - 2; ++j) chunks->push_back(static_cast<int32_t>(j));
  // NaN scores (a diverging model) rank last, keeping the order strict-weak.
  const auto key = [scores](int32_t j) { return std::isnan(scores[j]) ? -INFINITY : scores[j]; };
  const auto better = [&key](int32_t a, int32_t b) {
    return key(a) > key(b) || (key(a) == key(b) && a < b);
  };
  std::nth_element(chunks->begin() + 1, chunks->begin() + 1 + (k - 3), chunks->end(), better);
  chunks->resize(1 + (k - 3));
  std::sort(chunks->begin() + 1, chunks->end());
  chunks->push_back(static_cast<int32_t>(c - 1));
  chunks->push_back(static_cast<int32_t>(c));
}

}  // namespace hr
