#include "kernels/cpu/slot_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/gemm_small_m.h"

namespace hr::cpu {

void DotRows(const float* q, const float* keys, int64_t n, int64_t d, float* scores) {
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {  // four independent accumulation chains
    const float* k0 = keys + t * d;
    const float* k1 = k0 + d;
    const float* k2 = k1 + d;
    const float* k3 = k2 + d;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int64_t c = 0; c < d; ++c) {
      a0 += q[c] * k0[c];
      a1 += q[c] * k1[c];
      a2 += q[c] * k2[c];
      a3 += q[c] * k3[c];
    }
    scores[t] = a0;
    scores[t + 1] = a1;
    scores[t + 2] = a2;
    scores[t + 3] = a3;
  }
  for (; t < n; ++t) {
    const float* k = keys + t * d;
    float a = 0.0f;
#pragma omp simd reduction(+ : a)
    for (int64_t c = 0; c < d; ++c) a += q[c] * k[c];
    scores[t] = a;
  }
}

void AccumulateWeightedRows(const float* weights, const float* rows, int64_t n, int64_t d,
                            float* out) {
  // Four rows per pass over `out`: one load and store of each output element
  // per four rows, so the loop is not bound by store-to-load forwarding (a
  // row-at-a-time loop was 5x slower; BLAS sgemv is slower still at these
  // sizes because of its call and threading overhead).
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    const float w0 = weights[t], w1 = weights[t + 1], w2 = weights[t + 2], w3 = weights[t + 3];
    const float* r0 = rows + t * d;
    const float* r1 = r0 + d;
    const float* r2 = r1 + d;
    const float* r3 = r2 + d;
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) out[c] += (w0 * r0[c] + w1 * r1[c]) + (w2 * r2[c] + w3 * r3[c]);
  }
  for (; t < n; ++t) {
    const float w0 = weights[t];
    const float* r0 = rows + t * d;
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) out[c] += w0 * r0[c];
  }
}

void SlotAttention(const SlotAttentionParams& p) {
  const int64_t d = p.head_dim;
  float* q = p.scratch;       // [d] query rotated for the current slot
  float* scores = q + d;      // [n_keys]
  std::fill(p.out, p.out + d, 0.0f);
  float running_max = -INFINITY;
  float running_sum = 0.0f;
  for (int64_t ci = 0; ci < p.n_chunks; ++ci) {
    const SlotChunk& chunk = p.chunks[ci];
    if (chunk.n_keys <= 0) continue;
    std::memcpy(q, p.q_local, sizeof(float) * d);
    p.steps->Apply(q, chunk.steps);
    DotRows(q, chunk.keys, chunk.n_keys, d, scores);
    float chunk_max = -INFINITY;
    for (int64_t t = 0; t < chunk.n_keys; ++t) {
      scores[t] *= p.scale;
      chunk_max = std::max(chunk_max, scores[t]);
    }
    // Online softmax: rescale what was accumulated when the maximum grows.
    if (chunk_max > running_max) {
      const float correction = std::exp(running_max - chunk_max);
      running_sum *= correction;
      for (int64_t c = 0; c < d; ++c) p.out[c] *= correction;
      running_max = chunk_max;
    }
    float chunk_sum = 0.0f;
    const float mx = running_max;
#pragma omp simd reduction(+ : chunk_sum)
    for (int64_t t = 0; t < chunk.n_keys; ++t) {
      scores[t] = FastExp(scores[t] - mx);
      chunk_sum += scores[t];
    }
    running_sum += chunk_sum;
    AccumulateWeightedRows(scores, chunk.values, chunk.n_keys, d, p.out);
  }
  if (running_sum > 0.0f) {
    const float inv = 1.0f / running_sum;
    for (int64_t c = 0; c < d; ++c) p.out[c] *= inv;
  }
}

void BeginSlotQueries(const SlotQueryBlock& b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    std::fill_n(b.out + i * b.out_stride, b.head_dim, 0.0f);
    b.row_max[i] = -INFINITY;
    b.row_sum[i] = 0.0f;
  }
}

void AttendSlotChunk(const SlotQueryBlock& b, const SlotChunkKeys& chunk,
                     const SlotChunkReaders& readers, float* scratch) {
  static_assert(kSlotBlockRows <= kSmallMMax);
  const int64_t d = b.head_dim;
  const int64_t n_keys = chunk.n_keys;
  if (n_keys <= 0) return;
  float* x = scratch;                          // [kSlotBlockRows][d] rotated queries
  float* logits = x + kSlotBlockRows * d;      // [kSlotBlockRows][n_keys]
  for (int64_t r0 = 0; r0 < readers.m; r0 += kSlotBlockRows) {
    const int64_t mb = std::min(kSlotBlockRows, readers.m - r0);
    for (int64_t r = 0; r < mb; ++r) {
      float* xr = x + r * d;
      std::memcpy(xr, b.q_local + readers.rows[r0 + r] * b.q_stride, sizeof(float) * d);
      b.steps->Apply(xr, readers.steps[r0 + r]);
    }
    // Every row against every key of the chunk (keys past a row's count are
    // computed and ignored: fewer branches than a ragged product).
    MatMulWtSmallM(x, mb, d, chunk.keys, n_keys, logits);
    for (int64_t r = 0; r < mb; ++r) {
      const int64_t row = readers.rows[r0 + r];
      const int64_t nk = readers.key_counts == nullptr ? n_keys : readers.key_counts[r0 + r];
      if (nk <= 0) continue;
      float* s = logits + r * n_keys;
      float* out = b.out + row * b.out_stride;
      float chunk_max = -INFINITY;
      for (int64_t t = 0; t < nk; ++t) {
        s[t] *= b.scale;
        chunk_max = std::max(chunk_max, s[t]);
      }
      // Online softmax: rescale what the row accumulated when its maximum grows.
      if (chunk_max > b.row_max[row]) {
        const float correction = std::exp(b.row_max[row] - chunk_max);
        b.row_sum[row] *= correction;
        for (int64_t c = 0; c < d; ++c) out[c] *= correction;
        b.row_max[row] = chunk_max;
      }
      const float mx = b.row_max[row];
      float chunk_sum = 0.0f;
#pragma omp simd reduction(+ : chunk_sum)
      for (int64_t t = 0; t < nk; ++t) {
        s[t] = FastExp(s[t] - mx);
        chunk_sum += s[t];
      }
      b.row_sum[row] += chunk_sum;
      AccumulateWeightedRows(s, chunk.values, nk, d, out);
    }
  }
}

void FinishSlotQueries(const SlotQueryBlock& b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (b.row_sum[i] <= 0.0f) continue;
    const float inv = 1.0f / b.row_sum[i];
    float* out = b.out + i * b.out_stride;
    for (int64_t c = 0; c < b.head_dim; ++c) out[c] *= inv;
  }
}

}  // namespace hr::cpu
