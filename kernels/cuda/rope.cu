#include <cmath>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rope.h"

namespace hr::cuda {
namespace {

// Rotates the pair (a, b) of `in` by (cos, sin) into `out` (may be `in`).
__device__ __forceinline__ void RotatePair(const float* in, float* out, int a, int b, float cs, float sn) {
  const float x0 = in[a], x1 = in[b];
  out[a] = x0 * cs - x1 * sn;
  out[b] = x0 * sn + x1 * cs;
}

// One block per row; threads over channel pairs, each rotating that pair in
// every head of the row (the angle is shared by the heads).
__global__ void RopeKernel(const float* src, int64_t src_stride, float* x, int64_t row_stride, int64_t n_heads,
                           int64_t head_dim, int64_t pos0, const int32_t* positions, int64_t pos_modulus,
                           const double* inv_freq, bool adjacent) {
  const int64_t r = blockIdx.x;
  int64_t pos = positions != nullptr ? positions[r] : pos0 + r;
  if (pos_modulus > 0) pos %= pos_modulus;
  const int64_t half = head_dim / 2;
  const float* in = src + r * src_stride;
  float* row = x + r * row_stride;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    double s, c;
    sincos(static_cast<double>(pos) * inv_freq[i], &s, &c);
    const float cs = static_cast<float>(c), sn = static_cast<float>(s);
    const int a = static_cast<int>(adjacent ? 2 * i : i);
    const int b = static_cast<int>(adjacent ? a + 1 : a + half);
    for (int64_t h = 0; h < n_heads; ++h) RotatePair(in + h * head_dim, row + h * head_dim, a, b, cs, sn);
  }
}

// Local positions from the table: one block per row, threads over (head,
// channel pair).
__global__ void RopeLocalKernel(const float* src, int64_t src_stride, float* x, int64_t row_stride, int n_heads,
                                int head_dim, int64_t pos0, const int32_t* positions, int64_t step,
                                const float* local_cos, const float* local_sin, bool adjacent) {
  const int64_t r = blockIdx.x;
  const int64_t pos = (positions != nullptr ? positions[r] : pos0 + r) % step;
  const int half = head_dim / 2;
  const float* in = src + r * src_stride;
  float* row = x + r * row_stride;
  for (int idx = threadIdx.x; idx < n_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    const int a = adjacent ? 2 * i : i;
    const int b = adjacent ? a + 1 : a + half;
    RotatePair(in + h * head_dim, row + h * head_dim, a, b, local_cos[pos * half + i], local_sin[pos * half + i]);
  }
}

}  // namespace

CudaStatus RopeTables::Create(int64_t head_dim, float theta, float linear_scale, RopeStyle style,
                              int64_t step, int64_t n_steps, std::unique_ptr<RopeTables>* out) {
  if (head_dim <= 0 || head_dim % 2 != 0 || step < 0 || n_steps < 0) return CudaStatus::kInvalidShape;
  if (DeviceCount() == 0) return CudaStatus::kNoDevice;
  std::unique_ptr<RopeTables> t(new RopeTables());
  t->head_dim_ = head_dim;
  t->style_ = style;
  t->step_ = step;
  t->n_steps_ = n_steps;
  const int64_t half = head_dim / 2;
  // As cpu::Rope and cpu::RopeStepTable compute them.
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = std::pow(static_cast<double>(theta), -2.0 * i / head_dim) / linear_scale;
  }
  std::vector<float> cs(std::max<int64_t>(1, n_steps * half)), sn(cs.size());
  for (int64_t j = 0; j < n_steps; ++j) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(j * step) * inv_freq[i];
      cs[j * half + i] = static_cast<float>(std::cos(a));
      sn[j * half + i] = static_cast<float>(std::sin(a));
    }
  }
  std::vector<float> lcs(std::max<int64_t>(1, step * half)), lsn(lcs.size());
  for (int64_t u = 0; u < step; ++u) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(u) * inv_freq[i];
      lcs[u * half + i] = static_cast<float>(std::cos(a));
      lsn[u * half + i] = static_cast<float>(std::sin(a));
    }
  }
  if (step > 0 && (cudaMalloc(&t->d_local_cos_, lcs.size() * sizeof(float)) != cudaSuccess ||
                   cudaMalloc(&t->d_local_sin_, lsn.size() * sizeof(float)) != cudaSuccess ||
                   cudaMemcpy(t->d_local_cos_, lcs.data(), lcs.size() * sizeof(float), cudaMemcpyHostToDevice) !=
                       cudaSuccess ||
                   cudaMemcpy(t->d_local_sin_, lsn.data(), lsn.size() * sizeof(float), cudaMemcpyHostToDevice) !=
                       cudaSuccess)) {
    return CudaStatus::kCudaError;  // the destructor frees what was allocated
  }
  if (cudaMalloc(&t->d_inv_freq_, half * sizeof(double)) != cudaSuccess ||
      cudaMalloc(&t->d_step_cos_, cs.size() * sizeof(float)) != cudaSuccess ||
      cudaMalloc(&t->d_step_sin_, sn.size() * sizeof(float)) != cudaSuccess ||
      cudaMemcpy(t->d_inv_freq_, inv_freq.data(), half * sizeof(double), cudaMemcpyHostToDevice) !=
          cudaSuccess ||
      cudaMemcpy(t->d_step_cos_, cs.data(), cs.size() * sizeof(float), cudaMemcpyHostToDevice) !=
          cudaSuccess ||
      cudaMemcpy(t->d_step_sin_, sn.data(), sn.size() * sizeof(float), cudaMemcpyHostToDevice) !=
          cudaSuccess) {
    return CudaStatus::kCudaError;  // the destructor frees what was allocated
  }
  *out = std::move(t);
  return CudaStatus::kOk;
}

RopeTables::~RopeTables() {
  cudaFree(d_inv_freq_);
  cudaFree(d_step_cos_);
  cudaFree(d_step_sin_);
  cudaFree(d_local_cos_);
  cudaFree(d_local_sin_);
}

CudaStatus Rope(const RopeParams& p) {
  if (p.rope == nullptr || p.rows < 0 || p.n_heads <= 0 ||
      p.row_stride < p.n_heads * p.rope->head_dim() || p.pos_modulus < 0 ||
      (p.d_src != nullptr && p.src_stride < p.n_heads * p.rope->head_dim())) {
    return CudaStatus::kInvalidShape;
  }
  if (p.rows == 0) return CudaStatus::kOk;
  const bool in_place = p.d_src == nullptr;
  const RopeTables& t = *p.rope;
  if (p.pos_modulus > 0 && p.pos_modulus == t.step() && p.n_heads <= (int64_t{1} << 20)) {
    RopeLocalKernel<<<static_cast<unsigned>(p.rows), 128, 0, AsStream(p.stream)>>>(
        in_place ? p.d_x : p.d_src, in_place ? p.row_stride : p.src_stride, p.d_x, p.row_stride,
        static_cast<int>(p.n_heads), static_cast<int>(t.head_dim()), p.pos0, p.d_positions, t.step(),
        t.d_local_cos(), t.d_local_sin(), t.style() == RopeStyle::kAdjacent);
    return LaunchStatus();
  }
  RopeKernel<<<static_cast<unsigned>(p.rows), 64, 0, AsStream(p.stream)>>>(
      in_place ? p.d_x : p.d_src, in_place ? p.row_stride : p.src_stride, p.d_x, p.row_stride, p.n_heads,
      p.rope->head_dim(), p.pos0, p.d_positions, p.pos_modulus, p.rope->d_inv_freq(),
      p.rope->style() == RopeStyle::kAdjacent);
  return LaunchStatus();
}

}  // namespace hr::cuda
