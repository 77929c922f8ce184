#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace hr::cpu {

KernelStatus CausalAttention(const CausalAttentionParams& p) {
  if (p.n_queries < 0 || p.first_query_pos < 0 || p.n_heads <= 0 || p.n_kv_heads <= 0 ||
      p.head_dim <= 0 || p.n_heads % p.n_kv_heads != 0) {
    return KernelStatus::kInvalidShape;
  }
  const int64_t group = p.n_heads / p.n_kv_heads;
  const int64_t d = p.head_dim;
  const int64_t kv_stride = p.n_kv_heads * d;
  const int64_t total = p.n_queries * p.n_heads;
  // Threads only pay off beyond ~64K multiply-adds (fork/join costs microseconds).
  const int64_t work = total * (p.first_query_pos + p.n_queries) * d;
#pragma omp parallel if (work > (int64_t{1} << 16))
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 1)
    for (int64_t job = 0; job < total; ++job) {
      const int64_t i = job / p.n_heads;
      const int64_t h = job % p.n_heads;
      const int64_t kvh = h / group;
      const int64_t n_keys = p.first_query_pos + i + 1;
      const float* q = p.q + (i * p.n_heads + h) * d;
      scores.resize(n_keys);
      float mx = -INFINITY;
      for (int64_t t = 0; t < n_keys; ++t) {
        const float* k = p.k + t * kv_stride + kvh * d;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < d; ++c) s += q[c] * k[c];
        s *= p.scale;
        scores[t] = s;
        mx = std::max(mx, s);
      }
      float sum = 0.0f;
      for (int64_t t = 0; t < n_keys; ++t) {
        scores[t] = std::exp(scores[t] - mx);
        sum += scores[t];
      }
      const float inv = 1.0f / sum;
      float* o = p.out + (i * p.n_heads + h) * d;
      std::fill(o, o + d, 0.0f);
      for (int64_t t = 0; t < n_keys; ++t) {
        const float w = scores[t] * inv;
        const float* v = p.v + t * kv_stride + kvh * d;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) o[c] += w * v[c];
      }
    }
  }
  return KernelStatus::kOk;
}

}  // namespace hr::cpu
