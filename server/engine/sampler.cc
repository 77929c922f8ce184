#include "server/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/argmax.h"

namespace hr {

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, got ", p.temperature));
  }
  if (p.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1), got ", p.min_p));
  }
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty)) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty must be > 0, got ", p.repetition_penalty));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_{params.seed} {}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> history) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  if (params_.repetition_penalty != 1.0f) {
    // Each distinct token is penalised once, as in Hugging Face.
    std::vector<int32_t> seen(history.begin(), history.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= vocab) continue;
      float& l = logits[t];
      l = l > 0.0f ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.temperature == 0.0f) {
    return static_cast<int32_t>(cpu::ArgMax(logits.data(), vocab));
  }

  // Candidates sorted by logit, descending (ties: lower id first).
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int32_t n = vocab;
  if (params_.top_k > 0 && params_.top_k < vocab) {
    n = params_.top_k;
    std::partial_sort(order_.begin(), order_.begin() + n, order_.end(), by_logit);
  } else {
    std::sort(order_.begin(), order_.end(), by_logit);
  }

  // Softmax with temperature over the n candidates.
  probs_.resize(n);
  const float mx = logits[order_[0]];
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    probs_[i] = std::exp((logits[order_[i]] - mx) / params_.temperature);
    sum += probs_[i];
  }
  for (int32_t i = 0; i < n; ++i) probs_[i] = static_cast<float>(probs_[i] / sum);

  // Top-p: the smallest prefix whose mass reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    double mass = 0.0;
    int32_t keep = 0;
    while (keep < n) {
      mass += probs_[keep++];
      if (mass >= params_.top_p) break;
    }
    n = keep;
  }
  // Min-p: relative to the most likely token.
  if (params_.min_p > 0.0f) {
    const float threshold = params_.min_p * probs_[0];
    int32_t keep = 1;
    while (keep < n && probs_[keep] >= threshold) ++keep;
    n = keep;
  }

  double total = 0.0;
  for (int32_t i = 0; i < n; ++i) total += probs_[i];
  const double r = rng_.Uniform() * total;
  double acc = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    acc += probs_[i];
    if (r < acc) return order_[i];
  }
  return order_[n - 1];
}

}  // namespace hr
