#include "server/engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/argmax.h"
#include "server/common/status.h"

namespace hr {

TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t sampled, int32_t top) {
  HR_CHECK(sampled >= 0 && static_cast<size_t>(sampled) < logits.size(), "sampled id out of range");
  const float max = logits[cpu::ArgMax(logits.data(), static_cast<int64_t>(logits.size()))];
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max));
  const double log_z = static_cast<double>(max) + std::log(sum);
  auto logprob = [&](int32_t id) { return static_cast<float>(logits[id] - log_z); };

  TokenLogprobs out;
  out.id = sampled;
  out.logprob = logprob(sampled);
  const int32_t k = std::min<int32_t>(top, static_cast<int32_t>(logits.size()));
  if (k <= 0) return out;
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  for (int32_t i = 0; i < k; ++i) out.top.push_back({ids[i], logprob(ids[i])});
  return out;
}

}  // namespace hr
