#include <algorithm>
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/paged_kv.h"

namespace hr::cuda {
namespace {

// Per token, warps over jobs: job g < n_kv_heads stores KV head g's key
// (rotated) and value, a later job rotates query head g - n_kv_heads; lanes
// over the head's channel pairs. The rotation by the token's offset u in its
// chunk comes from the RoPE tables' local table (FP64 cos/sin of
// u · inv_freq as the CPU computes them, rounded to FP32). (An FP64 sincos
// per token in the kernel cost as much as the copy at 512 tokens.)
//
// Grid: tokens x y, the warps of a token's y blocks striding over its jobs.
// Measured on an H200 (cuda_h200_prefill.md): a block per token looping over
// all pairs with a division per pair took 9 us per launch at 512 tokens,
// 24 us at 4096; a block per four jobs (24 jobs: 6 blocks per token) 7 us at
// 512 but 33 us at 4096, too many tiny blocks. So y fills the device when
// the tokens alone do not (KvAppendGridY) and is 1 when they do.
constexpr int kWarps = 4;

template <typename T>
__device__ __forceinline__ void AppendHead(const PagedKvLayer& kv, T* keys, const float* kr, const float* vr,
                                           const float* rot_cos, const float* rot_sin, bool adjacent, int lane) {
  const int half = kv.head_dim / 2;
  T* values = keys + kv.value_offset;
  for (int p = lane; p < half; p += 32) {
    const int a = adjacent ? 2 * p : p;
    const int b = adjacent ? a + 1 : a + half;
    const float cs = rot_cos[p], sn = rot_sin[p];
    const float x0 = kr[a], x1 = kr[b];
    keys[a] = FromF32<T>(x0 * cs - x1 * sn);
    keys[b] = FromF32<T>(x0 * sn + x1 * cs);
    values[a] = FromF32<T>(vr[a]);
    values[b] = FromF32<T>(vr[b]);
  }
}

__device__ __forceinline__ void RotateQueryHead(const float* qr, float* qo, int half, const float* rot_cos,
                                                const float* rot_sin, bool adjacent, int lane) {
  for (int p = lane; p < half; p += 32) {
    const int a = adjacent ? 2 * p : p;
    const int b = adjacent ? a + 1 : a + half;
    const float cs = rot_cos[p], sn = rot_sin[p];
    const float x0 = qr[a], x1 = qr[b];
    qo[a] = x0 * cs - x1 * sn;
    qo[b] = x0 * sn + x1 * cs;
  }
}

template <typename T>
__global__ void __launch_bounds__(32 * kWarps)
    KvAppendKernel(PagedKvLayer kv, const float* k, const float* v, int64_t row_stride, const int32_t* block_table,
                   int64_t pos0, const int32_t* row_positions, const int32_t* row_blocks, const float* local_cos,
                   const float* local_sin, bool adjacent, const float* q, int64_t q_stride, float* q_out,
                   int64_t q_out_stride, int n_q_heads) {
  const int64_t i = blockIdx.x;
  const int lane = threadIdx.x % 32;
  const int d = kv.head_dim;
  const int half = d / 2;
  const int64_t pos = row_positions != nullptr ? row_positions[i] : pos0 + i;
  const int64_t u = pos % kv.chunk_size;
  const float* rot_cos = local_cos + u * half;
  const float* rot_sin = local_sin + u * half;
  const int64_t block = row_blocks != nullptr ? row_blocks[i] : block_table[pos / kv.chunk_size];
  T* token_keys = static_cast<T*>(kv.d_base) + block * kv.block_stride + u * d;
  const int jobs = kv.n_kv_heads + n_q_heads;
  for (int job = blockIdx.y * kWarps + threadIdx.x / 32; job < jobs; job += gridDim.y * kWarps) {
    if (job < kv.n_kv_heads) {
      AppendHead<T>(kv, token_keys + static_cast<int64_t>(job) * kv.chunk_size * d,
                    k + i * row_stride + static_cast<int64_t>(job) * d,
                    v + i * row_stride + static_cast<int64_t>(job) * d, rot_cos, rot_sin, adjacent, lane);
    } else {  // query head job - n_kv_heads
      const int64_t g = job - kv.n_kv_heads;
      RotateQueryHead(q + i * q_stride + g * d, q_out + i * q_out_stride + g * d, half, rot_cos, rot_sin, adjacent,
                      lane);
    }
  }
}

// Blocks per token: enough for ~8 blocks per multiprocessor over the launch,
// no more than the token's jobs need (a warp each). 1 when the device's
// limits are unknown.
unsigned KvAppendGridY(int64_t n_tokens, int64_t jobs) {
  DeviceLimits limits;
  if (CurrentDeviceLimits(&limits) != CudaStatus::kOk) return 1;
  const int64_t wanted = (8 * static_cast<int64_t>(limits.sm_count) + n_tokens - 1) / n_tokens;
  return static_cast<unsigned>(std::clamp<int64_t>(wanted, 1, (jobs + kWarps - 1) / kWarps));
}

}  // namespace

CudaStatus KvAppend(const KvAppendParams& p) {
  if (p.rope == nullptr || p.rope->head_dim() != p.kv.head_dim || p.rope->step() != p.kv.chunk_size ||
      p.kv.head_dim <= 0 ||
      p.kv.chunk_size <= 0 || p.kv.n_kv_heads <= 0 || p.n_tokens < 0 || p.pos0 < 0 ||
      p.n_tokens > (int64_t{1} << 31) - 1 ||
      (p.row_stride != 0 && p.row_stride < p.kv.n_kv_heads * p.kv.head_dim) ||
      ((p.d_row_positions == nullptr) != (p.d_row_blocks == nullptr)) ||
      (p.d_q != nullptr && (p.d_q_out == nullptr || p.n_q_heads <= 0 || p.n_q_heads > (int64_t{1} << 20) ||
                            p.q_stride < p.n_q_heads * p.kv.head_dim ||
                            p.q_out_stride < p.n_q_heads * p.kv.head_dim))) {
    return CudaStatus::kInvalidShape;
  }
  const int64_t row_stride = p.row_stride != 0 ? p.row_stride : p.kv.n_kv_heads * p.kv.head_dim;
  const int64_t jobs = p.kv.n_kv_heads + (p.d_q != nullptr ? p.n_q_heads : 0);
  if (p.n_tokens == 0) return CudaStatus::kOk;
  const bool adjacent = p.rope->style() == RopeStyle::kAdjacent;
  HR_DISPATCH_DTYPE(p.kv.dtype, {
    const dim3 grid(static_cast<unsigned>(p.n_tokens), KvAppendGridY(p.n_tokens, jobs));
    KvAppendKernel<T><<<grid, 32 * kWarps, 0, AsStream(p.stream)>>>(
        p.kv, p.d_k, p.d_v, row_stride, p.d_block_table, p.pos0, p.d_row_positions, p.d_row_blocks,
        p.rope->d_local_cos(), p.rope->d_local_sin(), adjacent, p.d_q, p.q_stride, p.d_q_out, p.q_out_stride,
        p.d_q != nullptr ? static_cast<int>(p.n_q_heads) : 0);
    return LaunchStatus();
  })
}

}  // namespace hr::cuda
