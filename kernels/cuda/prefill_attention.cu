// Tiled attention for the queries of a prefill span, each (query, head) with
// its own chunk list (design.md §3, "exact per-token selection need not mean
// per-token gathers"): the dispatch between the tensor-core kernel
// (prefill_attention_mma.cu) and the FP32 SIMT kernel below.
//
// SIMT kernel.
// Block: 32 queries of one head inside one chunk (prefill_span.cuh), 4
// threads per query. The block walks the union of its queries' lists in
// chunk order (a block-wide minimum over each query's next list entry). For
// each chunk in the union, a query that selected it is rotated for its own
// slot in that list (registers), the chunk's keys and values pass through
// shared memory in tiles as F32, and each query keeps an online softmax;
// queries that did not select the chunk sit the chunk out. Scores are in the
// log2 domain.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/prefill_attention_mma.cuh"
#include "kernels/cuda/prefill_span.cuh"
#include "kernels/cuda/split_combine.cuh"

namespace hr::cuda {
namespace {

constexpr int kRows = 32;
constexpr int kThreads = 128;  // 4 per query

template <int D>
struct PrefillShape {
  static constexpr int kBk = D == 128 ? 32 : 64;  // keys per shared-memory tile
  static constexpr int kKeysPerThread = kBk / 4;
  static constexpr int kChPerThread = D / 4;
};

using PrefillArgs = PrefillSpanArgs;

template <int D>
int64_t PrefillSmemFloats(int list_stride) {
  using S = PrefillShape<D>;
  return static_cast<int64_t>(kRows) * D + 2 * S::kBk * (D + 1) + kRows * (S::kBk + 1) +
         static_cast<int64_t>(kRows) * list_stride + 4;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) PrefillKernel(PrefillArgs a) {
  using S = PrefillShape<D>;
  constexpr int E = 16 / sizeof(T);
  constexpr int kBk = S::kBk;
  extern __shared__ float smem[];
  float* qloc = smem;                         // [kRows][D]
  float* ks = qloc + kRows * D;               // [kBk][D + 1]
  float* vs = ks + kBk * (D + 1);             // [kBk][D + 1]
  float* ps = vs + kBk * (D + 1);             // [kRows][kBk + 1]
  int* lists = reinterpret_cast<int*>(ps + kRows * (kBk + 1));  // [kRows][list_stride]
  int* red = lists + kRows * a.list_stride;   // [4]

  const SpanBlock blk = SpanBlockAt(blockIdx.x, a.tiles.Total(), 1, a.n_heads);
  const int h = blk.head;
  const int g = h / a.group;
  const int r = threadIdx.x / 4, sub = threadIdx.x % 4;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned row_mask = 0xfu << (lane & ~3);
  int q0, q_end;  // this tile's queries (span indices), all in chunk c
  a.tiles.Range(blk.tile, &q0, &q_end);
  if (q_end <= q0) return;
  const int qi = q0 + r;
  const bool valid = qi < q_end;
  const int w = a.kv.chunk_size;
  const int c = static_cast<int>((a.pos0 + q0) / w);
  const int u = static_cast<int>((a.pos0 + qi) % w);
  const int L = a.list_stride;
  const int own_keys = static_cast<int>((a.pos0 + q_end - 1) % w) + 1;  // keys of chunk c any row reads

  for (int idx = threadIdx.x; idx < kRows * D; idx += kThreads) {
    const int rr = idx / D, cc = idx % D;
    qloc[idx] = q0 + rr < q_end
                    ? a.q_local[(static_cast<int64_t>(q0 + rr) * a.n_heads + h) * D + cc]
                    : 0.0f;
  }
  for (int idx = threadIdx.x; idx < kRows * L; idx += kThreads) {
    const int rr = idx / L, s = idx % L;
    lists[idx] = q0 + rr < q_end ? ListEntry(a, static_cast<int64_t>(q0 + rr) * a.n_heads + h, s, c) : INT_MAX;
  }
  __syncthreads();

  float qr[D];
  float acc[S::kChPerThread];
#pragma unroll
  for (int e = 0; e < S::kChPerThread; ++e) acc[e] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  int next = 0;  // this query's next list entry (past the -1 padding of a shorter list)
  if (valid) {
    while (next < L && lists[r * L + next] < 0) ++next;
  }
  while (true) {
    // The next chunk of the union: the smallest next entry over the rows.
    int nxt = valid && next < L ? lists[r * L + next] : INT_MAX;
    for (int o = 16; o > 0; o /= 2) nxt = min(nxt, __shfl_xor_sync(0xffffffffu, nxt, o));
    if (lane == 0) red[warp] = nxt;
    __syncthreads();
    const int j = min(min(red[0], red[1]), min(red[2], red[3]));
    __syncthreads();
    if (j == INT_MAX) break;
    const bool sel = valid && next < L && lists[r * L + next] == j;
    if (sel) {
      const int step = L - 1 - next;
      const float* cs = a.step_cos + step * (D / 2);
      const float* sn = a.step_sin + step * (D / 2);
      const float* x = qloc + r * D;
      if (a.adjacent) {
#pragma unroll
        for (int i = 0; i < D / 2; ++i) {
          qr[2 * i] = (x[2 * i] * cs[i] - x[2 * i + 1] * sn[i]) * a.scale_log2;
          qr[2 * i + 1] = (x[2 * i] * sn[i] + x[2 * i + 1] * cs[i]) * a.scale_log2;
        }
      } else {
#pragma unroll
        for (int i = 0; i < D / 2; ++i) {
          qr[i] = (x[i] * cs[i] - x[i + D / 2] * sn[i]) * a.scale_log2;
          qr[i + D / 2] = (x[i] * sn[i] + x[i + D / 2] * cs[i]) * a.scale_log2;
        }
      }
      ++next;
    }
    const int keys_j = j == c ? own_keys : w;
    const T* kbase = static_cast<const T*>(a.kv.d_base) +
                     static_cast<int64_t>(a.block_table[j]) * a.kv.block_stride +
                     static_cast<int64_t>(g) * w * D;
    const T* vbase = kbase + a.kv.value_offset;
    for (int kt = 0; kt < keys_j; kt += kBk) {
      __syncthreads();  // the previous tile's readers are done
      for (int idx = threadIdx.x; idx < kBk * (D / E); idx += kThreads) {
        const int key = idx / (D / E), part = idx % (D / E);
        float kf[E], vf[E];
        if (kt + key < keys_j) {
          const int64_t off = static_cast<int64_t>(kt + key) * D + part * E;
          Unpack16<T>(__ldg(reinterpret_cast<const uint4*>(kbase + off)), kf);
          Unpack16<T>(__ldg(reinterpret_cast<const uint4*>(vbase + off)), vf);
        } else {
#pragma unroll
          for (int e = 0; e < E; ++e) kf[e] = vf[e] = 0.0f;
        }
#pragma unroll
        for (int e = 0; e < E; ++e) {
          ks[key * (D + 1) + part * E + e] = kf[e];
          vs[key * (D + 1) + part * E + e] = vf[e];
        }
      }
      __syncthreads();
      if (!sel) continue;
      float s[S::kKeysPerThread];
      float tile_max = -INFINITY;
#pragma unroll
      for (int mm = 0; mm < S::kKeysPerThread; ++mm) {
        const int key = sub + 4 * mm;
        const int kk = kt + key;
        const float* kr = ks + key * (D + 1);
        float dot = 0.0f;
#pragma unroll
        for (int cc = 0; cc < D; ++cc) dot += qr[cc] * kr[cc];
        s[mm] = (kk >= keys_j || (j == c && kk > u)) ? -INFINITY : dot;
        tile_max = fmaxf(tile_max, s[mm]);
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(row_mask, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(row_mask, tile_max, 2));
      const float m_new = fmaxf(m, tile_max);
      if (m_new == -INFINITY) continue;  // uniform over the row's 4 threads
      const float corr = exp2f(m - m_new);
      float psum = 0.0f;
#pragma unroll
      for (int mm = 0; mm < S::kKeysPerThread; ++mm) {
        const float pr = exp2f(s[mm] - m_new);
        ps[r * (kBk + 1) + sub + 4 * mm] = pr;
        psum += pr;
      }
      psum += __shfl_xor_sync(row_mask, psum, 1);
      psum += __shfl_xor_sync(row_mask, psum, 2);
      l = l * corr + psum;
      m = m_new;
#pragma unroll
      for (int e = 0; e < S::kChPerThread; ++e) acc[e] *= corr;
      __syncwarp(row_mask);
      for (int k2 = 0; k2 < kBk; ++k2) {
        const float pk = ps[r * (kBk + 1) + k2];
        const float* vr = vs + k2 * (D + 1) + sub;
#pragma unroll
        for (int e = 0; e < S::kChPerThread; ++e) acc[e] += pk * vr[4 * e];
      }
      __syncwarp(row_mask);
    }
  }
  if (valid) {
    const int64_t o = (static_cast<int64_t>(qi) * a.n_heads + h) * D + sub;
    const float inv = 1.0f / l;
#pragma unroll
    for (int e = 0; e < S::kChPerThread; ++e) a.out.Store(o + 4 * e, acc[e] * inv);
  }
}

}  // namespace

size_t PrefillAttentionWorkspaceBytes(int32_t n_queries, int32_t n_heads, int32_t head_dim,
                                      int32_t splits) {
  return SplitWorkspaceBytes(static_cast<int64_t>(n_queries) * n_heads, head_dim, splits);
}

bool PrefillUsesTensorCores(const PagedKvLayer& kv) {
  DeviceLimits limits;
  return CurrentDeviceLimits(&limits) == CudaStatus::kOk && PrefillTensorCoresApply(kv, limits);
}

size_t PrefillAttentionWorkspaceWanted(const PrefillAttentionParams& p) {
  DeviceLimits limits;
  if (!p.tensor_cores || p.n_queries <= 0 || p.n_heads <= 0 || p.kv.chunk_size <= 0 || p.pos0 < 0 ||
      CurrentDeviceLimits(&limits) != CudaStatus::kOk || !PrefillTensorCoresApply(p.kv, limits)) {
    return 0;
  }
  const int32_t splits = PrefillTensorCoresSplits(p, limits);
  return splits > 1 ? PrefillAttentionWorkspaceBytes(p.n_queries, p.n_heads, p.kv.head_dim, splits) : 0;
}

size_t PrefillAttentionWorkspaceBound(int32_t n_queries, int32_t n_heads, int32_t head_dim, int32_t max_splits) {
  DeviceLimits limits;
  if (n_queries <= 0 || n_heads <= 0 || CurrentDeviceLimits(&limits) != CudaStatus::kOk) return 0;
  int32_t splits = PrefillTensorCoresSplitsBound(n_heads, head_dim, limits);
  if (max_splits > 0) splits = std::min(splits, max_splits);
  return PrefillAttentionWorkspaceBytes(n_queries, n_heads, head_dim, splits);
}

CudaStatus PrefillAttention(const PrefillAttentionParams& p) {
  const PagedKvLayer& kv = p.kv;
  if (p.out_dtype == DType::kF16) return CudaStatus::kUnsupported;
  if (p.n_queries < 0 || p.n_heads <= 0 || kv.n_kv_heads <= 0 || p.n_heads % kv.n_kv_heads != 0 ||
      p.list_stride <= 0 || kv.chunk_size <= 0 || p.pos0 < 0 || p.rope == nullptr ||
      p.rope->head_dim() != kv.head_dim || p.rope->step() != kv.chunk_size ||
      p.rope->n_steps() < p.list_stride || (p.warp_rows != 0 && p.warp_rows != 16 && p.warp_rows != 32) ||
      (p.d_chunks == nullptr && p.n_queries > 0 && p.list_stride <= (p.pos0 + p.n_queries - 1) / kv.chunk_size)) {
    return CudaStatus::kInvalidShape;
  }
  // The tensor-core kernel reads queries 16 bytes at a time and stores partial
  // states in pairs; both kernels store output pairs.
  if (reinterpret_cast<uintptr_t>(p.d_q_local) % 16 != 0 || reinterpret_cast<uintptr_t>(p.d_out) % 8 != 0 ||
      reinterpret_cast<uintptr_t>(p.d_workspace) % 16 != 0) {
    return CudaStatus::kInvalidShape;
  }
  if (p.n_queries == 0) return CudaStatus::kOk;
  if (p.tensor_cores) {
    DeviceLimits limits;
    HR_CUDA_RETURN_IF_ERROR(CurrentDeviceLimits(&limits));
    if (PrefillTensorCoresApply(kv, limits)) return PrefillAttentionTensorCores(p, limits);
  }
  const PrefillArgs a = MakePrefillSpanArgs(p, kRows);
  const int64_t blocks = static_cast<int64_t>(a.tiles.Total()) * p.n_heads;  // SpanBlockAt, one split
  if (blocks > INT_MAX) return CudaStatus::kInvalidShape;
  const dim3 grid(static_cast<unsigned>(blocks));
  HR_DISPATCH_DTYPE(kv.dtype, {
    HR_DISPATCH_HEAD_DIM(kv.head_dim, {
      const int64_t smem = PrefillSmemFloats<D>(p.list_stride) * 4;
      const void* kernel = reinterpret_cast<const void*>(&PrefillKernel<T, D>);
      HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(kernel, smem));
      PrefillKernel<T, D><<<grid, kThreads, smem, AsStream(p.stream)>>>(a);
      return LaunchStatus();
    })
  })
}

}  // namespace hr::cuda
