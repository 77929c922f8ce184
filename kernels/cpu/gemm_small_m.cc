#include "kernels/cpu/gemm_small_m.h"

#include "kernels/cpu/gemm_small_m_variants.h"

namespace hr::cpu {

namespace {
using Impl = void (*)(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t);

struct Choice {
  Impl impl;
  const char* name;
};

Choice Choose() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {avx512::MatMulWtSmallMImpl, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {avx2::MatMulWtSmallMImpl, "avx2"};
  }
  return {generic::MatMulWtSmallMImpl, "generic"};
}

const Choice& Chosen() {
  static const Choice choice = Choose();
  return choice;
}
}  // namespace

void MatMulWtSmallM(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y) {
  Chosen().impl(x, m, k, w, n, y, n);
}

void MatMulWtSmallM(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                    int64_t ldy) {
  Chosen().impl(x, m, k, w, n, y, ldy);
}

const char* SmallMVariant() { return Chosen().name; }

}  // namespace hr::cpu
