#include "kernels/cuda/common.cuh"
#include "kernels/cuda/paged_kv.h"

namespace hr::cuda {
namespace {

// One block per token, threads over (kv head, channel pair) and then (query
// head, channel pair) when queries are given; the rotation by
// the token's offset u in its chunk comes from the RoPE tables' local table
// (FP64 cos/sin of u · inv_freq as the CPU computes them, rounded to FP32).
// (An FP64 sincos per token in the kernel cost as much as the copy at 512
// tokens.) Measured on an H200 against two warp-per-head variants
// (bench/results/cuda_h200_prefill.md): a warp per (token, head) in blocks of
// 4 took 0.392 ms for 12 layers at 4096 tokens, the warps of a token's block
// striding over its heads 0.365 ms; this kernel 0.286 ms (0.106 ms at 512
// tokens, where those took 0.086 and 0.099).
template <typename T>
__global__ void KvAppendKernel(PagedKvLayer kv, const float* k, const float* v, int64_t row_stride,
                               const int32_t* block_table, int64_t pos0, const int32_t* row_positions,
                               const int32_t* row_blocks, const float* local_cos, const float* local_sin,
                               bool adjacent, const float* q, int64_t q_stride, float* q_out, int64_t q_out_stride,
                               int n_q_heads) {
  const int64_t i = blockIdx.x;
  const int d = kv.head_dim;
  const int half = d / 2;
  const int64_t pos = row_positions != nullptr ? row_positions[i] : pos0 + i;
  const int64_t u = pos % kv.chunk_size;
  const int64_t block = row_blocks != nullptr ? row_blocks[i] : block_table[pos / kv.chunk_size];
  const float* rot_cos = local_cos + u * half;
  const float* rot_sin = local_sin + u * half;
  T* token_keys = static_cast<T*>(kv.d_base) + block * kv.block_stride + u * d;
  const int kv_pairs = kv.n_kv_heads * half;
  for (int idx = threadIdx.x; idx < kv_pairs + n_q_heads * half; idx += blockDim.x) {
    const int g = idx / half, p = idx % half;
    const int a = adjacent ? 2 * p : p;
    const int b = adjacent ? a + 1 : a + half;
    const float cs = rot_cos[p], sn = rot_sin[p];
    if (idx >= kv_pairs) {  // query head g - n_kv_heads
      const float* qr = q + i * q_stride + static_cast<int64_t>(g - kv.n_kv_heads) * d;
      float* qo = q_out + i * q_out_stride + static_cast<int64_t>(g - kv.n_kv_heads) * d;
      const float x0 = qr[a], x1 = qr[b];
      qo[a] = x0 * cs - x1 * sn;
      qo[b] = x0 * sn + x1 * cs;
      continue;
    }
    T* keys = token_keys + static_cast<int64_t>(g) * kv.chunk_size * d;
    T* values = keys + kv.value_offset;
    const float* kr = k + i * row_stride + static_cast<int64_t>(g) * d;
    const float* vr = v + i * row_stride + static_cast<int64_t>(g) * d;
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
  if (p.n_tokens == 0) return CudaStatus::kOk;
  const bool adjacent = p.rope->style() == RopeStyle::kAdjacent;
  HR_DISPATCH_DTYPE(p.kv.dtype, {
    KvAppendKernel<T><<<static_cast<unsigned>(p.n_tokens), 128, 0, AsStream(p.stream)>>>(
        p.kv, p.d_k, p.d_v, row_stride, p.d_block_table, p.pos0, p.d_row_positions, p.d_row_blocks,
        p.rope->d_local_cos(), p.rope->d_local_sin(), adjacent, p.d_q, p.q_stride, p.d_q_out, p.q_out_stride,
        p.d_q != nullptr ? static_cast<int>(p.n_q_heads) : 0);
    return LaunchStatus();
  })
}

}  // namespace hr::cuda
