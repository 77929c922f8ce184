#include "kernels/cuda/common.cuh"
#include "kernels/cuda/paged_kv.h"

namespace hr::cuda {
namespace {

// A warp per (token, job): job g < n_kv_heads stores KV head g's key
// (rotated) and value, a later job rotates query head g - n_kv_heads; lanes
// over the head's channel pairs. The rotation by the token's offset u in its
// chunk comes from the RoPE tables' local table (FP64 cos/sin of
// u · inv_freq as the CPU computes them, rounded to FP32). (An FP64 sincos
// per token in the kernel cost as much as the copy at 512 tokens; a block
// per token looping over all its pairs with a division per pair took 9 us
// per launch at 512 tokens, 24 us at 4096, cuda_h200_prefill.md.)
constexpr int kJobsPerBlock = 4;  // warps

template <typename T>
__global__ void __launch_bounds__(32 * kJobsPerBlock)
    KvAppendKernel(PagedKvLayer kv, const float* k, const float* v, int64_t row_stride, const int32_t* block_table,
                   int64_t pos0, const int32_t* row_positions, const int32_t* row_blocks, const float* local_cos,
                   const float* local_sin, bool adjacent, const float* q, int64_t q_stride, float* q_out,
                   int64_t q_out_stride, int n_q_heads) {
  const int64_t i = blockIdx.x;
  const int job = blockIdx.y * kJobsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (job >= kv.n_kv_heads + n_q_heads) return;
  const int d = kv.head_dim;
  const int half = d / 2;
  const int64_t pos = row_positions != nullptr ? row_positions[i] : pos0 + i;
  const int64_t u = pos % kv.chunk_size;
  const float* rot_cos = local_cos + u * half;
  const float* rot_sin = local_sin + u * half;
  if (job >= kv.n_kv_heads) {  // query head job - n_kv_heads
    const float* qr = q + i * q_stride + static_cast<int64_t>(job - kv.n_kv_heads) * d;
    float* qo = q_out + i * q_out_stride + static_cast<int64_t>(job - kv.n_kv_heads) * d;
    for (int p = lane; p < half; p += 32) {
      const int a = adjacent ? 2 * p : p;
      const int b = adjacent ? a + 1 : a + half;
      const float cs = rot_cos[p], sn = rot_sin[p];
      const float x0 = qr[a], x1 = qr[b];
      qo[a] = x0 * cs - x1 * sn;
      qo[b] = x0 * sn + x1 * cs;
    }
    return;
  }
  const int64_t block = row_blocks != nullptr ? row_blocks[i] : block_table[pos / kv.chunk_size];
  T* keys = static_cast<T*>(kv.d_base) + block * kv.block_stride + static_cast<int64_t>(job) * kv.chunk_size * d +
            u * d;
  T* values = keys + kv.value_offset;
  const float* kr = k + i * row_stride + static_cast<int64_t>(job) * d;
  const float* vr = v + i * row_stride + static_cast<int64_t>(job) * d;
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
  if ((jobs + kJobsPerBlock - 1) / kJobsPerBlock > 65535) return CudaStatus::kInvalidShape;
  if (p.n_tokens == 0) return CudaStatus::kOk;
  const bool adjacent = p.rope->style() == RopeStyle::kAdjacent;
  HR_DISPATCH_DTYPE(p.kv.dtype, {
    const dim3 grid(static_cast<unsigned>(p.n_tokens),
                    static_cast<unsigned>((jobs + kJobsPerBlock - 1) / kJobsPerBlock));
    KvAppendKernel<T><<<grid, 32 * kJobsPerBlock, 0, AsStream(p.stream)>>>(
        p.kv, p.d_k, p.d_v, row_stride, p.d_block_table, p.pos0, p.d_row_positions, p.d_row_blocks,
        p.rope->d_local_cos(), p.rope->d_local_sin(), adjacent, p.d_q, p.q_stride, p.d_q_out, p.q_out_stride,
        p.d_q != nullptr ? static_cast<int>(p.n_q_heads) : 0);
    return LaunchStatus();
  })
}

}  // namespace hr::cuda
