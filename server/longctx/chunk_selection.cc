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
  // LongHeads: the k-3 best of chunks 1 .. c-2 (higher score, then lower
  // index), by one pass that keeps the best so far sorted and skips, 64 at a
  // time, candidates not above the worst of them (nth_element over an
  // index list was half of the prefill time at 4K chunks). NaN scores (a
  // diverging model) rank last.
  const int64_t want = k - 3;
  const auto key = [scores](int64_t j) { return std::isnan(scores[j]) ? -INFINITY : scores[j]; };
  struct Entry {
    float score;
    int32_t chunk;
  };
  std::vector<Entry> best(want);
  int64_t n_best = 0;
  // Inserts candidate j (known to beat the current worst when the list is
  // full): later candidates lose ties, so equal scores stay behind.
  const auto insert = [&](int64_t j) {
    const float v = key(j);
    int64_t pos = n_best < want ? n_best++ : want - 1;
    while (pos > 0 && best[pos - 1].score < v) {
      best[pos] = best[pos - 1];
      --pos;
    }
    best[pos] = {v, static_cast<int32_t>(j)};
  };
  constexpr int64_t kSkip = 64;  // candidates tested at once (a vectorised maximum)
  int64_t j = 1;
  for (; j <= c - 2 && n_best < want; ++j) insert(j);
  while (want > 0 && j <= c - 2) {
    if (j + kSkip <= c - 1) {
      float block_max = -INFINITY;
      for (int64_t t = 0; t < kSkip; ++t) {
        const float v = scores[j + t];
        block_max = v > block_max ? v : block_max;  // NaN never wins
      }
      if (!(block_max > best[want - 1].score)) {
        j += kSkip;
        continue;
      }
      for (const int64_t end = j + kSkip; j < end; ++j) {
        if (scores[j] > best[want - 1].score) insert(j);
      }
    } else {
      if (scores[j] > best[want - 1].score) insert(j);
      ++j;
    }
  }
  std::sort(best.begin(), best.begin() + n_best, [](const Entry& a, const Entry& b) { return a.chunk < b.chunk; });
  chunks->push_back(0);
  for (int64_t i = 0; i < n_best; ++i) chunks->push_back(best[i].chunk);
  chunks->push_back(static_cast<int32_t>(c - 1));
  chunks->push_back(static_cast<int32_t>(c));
}

}  // namespace hr
