#include "kernels/cpu/argmax.h"

#include <cmath>
#include <cstring>

namespace hr::cpu {
namespace {

// Four floats (GCC/Clang vector extension: SSE on x86-64, NEON on arm64).
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I4 __attribute__((vector_size(16)));

F4 Load(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// m < v ? v : m, lane by lane: keeps m for a NaN v, as operator< in
// std::max_element (one maxps on x86-64).
F4 Max(F4 m, F4 v) { return m < v ? v : m; }

constexpr int kVectors = 4;  // running maxima: 16 elements an iteration
constexpr int kBlock = 4 * kVectors;

}  // namespace

int64_t ArgMax(const float* x, int64_t n) {
  if (n <= 0 || std::isnan(x[0])) return 0;
  const F4 first = {x[0], x[0], x[0], x[0]};
  F4 m[kVectors];
  for (F4& v : m) v = first;
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    for (int j = 0; j < kVectors; ++j) m[j] = Max(m[j], Load(x + i + 4 * j));
  }
  for (int j = 1; j < kVectors; ++j) m[0] = Max(m[0], m[j]);
  float best = x[0];
  for (int j = 0; j < 4; ++j) best = best < m[0][j] ? m[0][j] : best;
  for (; i < n; ++i) best = best < x[i] ? x[i] : best;
  // The first element equal to the maximum is std::max_element's: every
  // earlier one is smaller (or NaN). (-0 == +0: the first zero, as there.)
  const F4 target = {best, best, best, best};
  int64_t k = 0;
  for (; k + kBlock <= n; k += kBlock) {
    I4 any = {0, 0, 0, 0};
    for (int j = 0; j < kVectors; ++j) any |= Load(x + k + 4 * j) == target;
    if ((any[0] | any[1] | any[2] | any[3]) != 0) break;
  }
  for (; k < n; ++k) {
    if (x[k] == best) return k;
  }
  return 0;  // not reached: best is one of the elements
}

}  // namespace hr::cpu
