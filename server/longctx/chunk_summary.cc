#include "server/longctx/chunk_summary.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/slot_attention.h"

namespace hr {

void LongHeadsSummary(const float* queries, const float* keys, const float* values, int64_t w,
                      int64_t d, bool adjacent_layout, float* scratch, float* out) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  float* probs = scratch;            // [w][w] intra-chunk attention
  float* column_mean = probs + w * w;  // [w]
  float* mean_out = column_mean + w;   // [d]
  cpu::MatMulWt(queries, w, d, keys, w, probs);
  std::fill(column_mean, column_mean + w, 0.0f);
  for (int64_t t = 0; t < w; ++t) {
    float* row = probs + t * w;
    for (int64_t s = 0; s < w; ++s) row[s] *= scale;
    cpu::Softmax(row, w);
    for (int64_t s = 0; s < w; ++s) column_mean[s] += row[s];
  }
  // q̄ = mean_t Σ_s P[t,s] v_s = Σ_s (mean_t P[t,s]) v_s
  std::fill(mean_out, mean_out + d, 0.0f);
  for (int64_t s = 0; s < w; ++s) {
    const float a = column_mean[s] / static_cast<float>(w);
    for (int64_t c = 0; c < d; ++c) mean_out[c] += a * values[s * d + c];
  }
  float* p = column_mean;  // reuse: [w]
  if (adjacent_layout) {
    // Into the keys' channel order (see the header); `out` as temporary.
    for (int64_t i = 0; i < d / 2; ++i) {
      out[2 * i] = mean_out[i];
      out[2 * i + 1] = mean_out[i + d / 2];
    }
    std::copy(out, out + d, mean_out);
  }
  cpu::DotRows(mean_out, keys, w, d, p);
  for (int64_t s = 0; s < w; ++s) p[s] *= scale;
  cpu::Softmax(p, w);
  std::fill(out, out + d, 0.0f);
  for (int64_t s = 0; s < w; ++s) {
    for (int64_t c = 0; c < d; ++c) out[c] += p[s] * keys[s * d + c];
  }
}

void BoundSummary(const float* keys, int64_t w, int64_t d, float* out) {
  float* mn = out;
  float* mx = out + d;
  std::copy(keys, keys + d, mn);
  std::copy(keys, keys + d, mx);
  for (int64_t s = 1; s < w; ++s) {
    for (int64_t c = 0; c < d; ++c) {
      mn[c] = std::min(mn[c], keys[s * d + c]);
      mx[c] = std::max(mx[c], keys[s * d + c]);
    }
  }
}

void MeanSummary(const float* keys, int64_t w, int64_t d, float* out) {
  std::fill(out, out + d, 0.0f);
  for (int64_t s = 0; s < w; ++s) {
    for (int64_t c = 0; c < d; ++c) out[c] += keys[s * d + c];
  }
  for (int64_t c = 0; c < d; ++c) out[c] /= static_cast<float>(w);
}

float ScoreChunk(SummaryKind kind, const float* q, const float* summary, int64_t d) {
  float acc = 0.0f;
  if (kind == SummaryKind::kBound) {
    const float* mn = summary;
    const float* mx = summary + d;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < d; ++c) acc += std::max(q[c] * mx[c], q[c] * mn[c]);
    return acc;
  }
#pragma omp simd reduction(+ : acc)
  for (int64_t c = 0; c < d; ++c) acc += q[c] * summary[c];
  return acc;
}

}  // namespace hr
