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

// cos and sin of (j · spacing) · inv_freq[i] for j < n, in double rounded to
// float ([n][inv_freq.size()]; one element when n == 0).
void Angles(const std::vector<double>& inv_freq, int64_t n, int64_t spacing, std::vector<float>* cs,
            std::vector<float>* sn) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  cs->assign(std::max<int64_t>(1, n * half), 0.0f);
  sn->assign(cs->size(), 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(j * spacing) * inv_freq[i];
      (*cs)[j * half + i] = static_cast<float>(std::cos(a));
      (*sn)[j * half + i] = static_cast<float>(std::sin(a));
    }
  }
}

// A device copy of `v` in *dst (freed by the owner); false on a CUDA error.
template <typename T>
bool Upload(const std::vector<T>& v, T** dst) {
  return cudaMalloc(dst, v.size() * sizeof(T)) == cudaSuccess &&
         cudaMemcpy(*dst, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess;
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
  std::vector<float> cs, sn, lcs, lsn;
  Angles(inv_freq, n_steps, step, &cs, &sn);  // rotations by j · step
  Angles(inv_freq, step, 1, &lcs, &lsn);      // by the local positions 0 .. step - 1
  if ((step > 0 && (!Upload(lcs, &t->d_local_cos_) || !Upload(lsn, &t->d_local_sin_))) ||
      !Upload(inv_freq, &t->d_inv_freq_) || !Upload(cs, &t->d_step_cos_) || !Upload(sn, &t->d_step_sin_)) {
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
  RopeKernel<<<static_cast<unsigned>(p.rows), 64, 0, AsStream(p.stream)>>>(
      in_place ? p.d_x : p.d_src, in_place ? p.row_stride : p.src_stride, p.d_x, p.row_stride, p.n_heads,
      p.rope->head_dim(), p.pos0, p.d_positions, p.pos_modulus, p.rope->d_inv_freq(),
      p.rope->style() == RopeStyle::kAdjacent);
  return LaunchStatus();
}

}  // namespace hr::cuda
