// Split-K (flash-decoding style) attention over (block, slot) lists.
//
// Grid: (query·head, split). A split owns a contiguous range of 64-key tiles
// of the list (tile t is keys (t mod tiles_per_chunk)·64 .. +63 of slot
// t / tiles_per_chunk). Inside a block, groups of kTpk threads each read one
// key as 16-byte vectors (kTpk · 16 bytes = one key row) and keep their own
// online-softmax state; the groups are merged in shared memory, and the
// splits by CombineSplits (split_combine.cuh). Scores are kept in the log2 domain (exp2).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/split_combine.cuh"

namespace hr::cuda {
namespace {

template <typename T, int D>
struct DecodeShape {
  static constexpr int kElems = 16 / sizeof(T);          // elements per 16-byte vector
  static constexpr int kTpk = D / kElems;                // threads per key
  static constexpr int kKpw = 32 / kTpk;                 // keys per warp per step
  // Four warps, fewer when one step of them would pass a whole tile (tiny heads).
  static constexpr int kWarps = kDecodeTileKeys / kKpw < 4 ? kDecodeTileKeys / kKpw : 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kGroups = kWarps * kKpw;          // keys per block per step
  static constexpr int kIters = kDecodeTileKeys / kGroups;
  static constexpr int kUnroll = kIters < 4 ? kIters : 4;  // loads in flight per thread
  static_assert(kTpk >= 1 && kTpk <= 32 && kWarps >= 1 && kIters >= 1 && kIters % kUnroll == 0,
                "unsupported shape");
};

struct DecodeArgs {
  const float* q_local;
  const int32_t* positions;
  const int32_t* blocks;
  int list_len;
  int n_heads;
  int group;
  PagedKvLayer kv;
  const float* step_cos;
  const float* step_sin;
  bool adjacent;
  float scale_log2;
  OutRows out;
  float* ws;  // [rows][n_splits][2 + D]: max, sum, accumulator
  int n_splits;
  int tiles_per_chunk;
};

template <typename T, int D>
__global__ void __launch_bounds__(DecodeShape<T, D>::kThreads) DecodeKernel(DecodeArgs a) {
  using S = DecodeShape<T, D>;
  constexpr int E = S::kElems;
  __shared__ float q_rot[D];
  __shared__ float part_m[S::kGroups];
  __shared__ float part_l[S::kGroups];
  __shared__ float part_acc[S::kGroups][D];
  const int row = blockIdx.x;
  const int split = blockIdx.y;
  const int qi = row / a.n_heads;
  const int h = row % a.n_heads;
  const int g = h / a.group;
  const int w = a.kv.chunk_size;
  const int u = a.positions[qi] % w;
  const int total_tiles = a.list_len * a.tiles_per_chunk;
  const int per_split = (total_tiles + a.n_splits - 1) / a.n_splits;
  const int t0 = split * per_split;
  const int t1 = min(total_tiles, t0 + per_split);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int grp = warp * S::kKpw + lane / S::kTpk;
  const int part = lane % S::kTpk;
  const float* q = a.q_local + static_cast<int64_t>(row) * D;
  const int32_t* blocks = a.blocks + static_cast<int64_t>(row) * a.list_len;

  float qv[E];
  float acc[E];
#pragma unroll
  for (int e = 0; e < E; ++e) acc[e] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  int cur_slot = -1;
  for (int tile = t0; tile < t1; ++tile) {
    const int slot = tile / a.tiles_per_chunk;
    const int key0 = (tile % a.tiles_per_chunk) * kDecodeTileKeys;
    const int n_keys = slot == a.list_len - 1 ? u + 1 : w;
    if (key0 >= n_keys || blocks[slot] < 0) continue;  // uniform across the block; -1: padding before a list
    if (slot != cur_slot) {
      // The query rotated for this slot: (own slot − slot) chunks further.
      __syncthreads();
      const int step = a.list_len - 1 - slot;
      for (int i = threadIdx.x; i < D / 2; i += blockDim.x) {
        const float cs = a.step_cos[step * (D / 2) + i], sn = a.step_sin[step * (D / 2) + i];
        const int ia = a.adjacent ? 2 * i : i;
        const int ib = a.adjacent ? ia + 1 : ia + D / 2;
        const float x0 = q[ia], x1 = q[ib];
        q_rot[ia] = x0 * cs - x1 * sn;
        q_rot[ib] = x0 * sn + x1 * cs;
      }
      __syncthreads();
#pragma unroll
      for (int e = 0; e < E; ++e) qv[e] = q_rot[part * E + e] * a.scale_log2;
      cur_slot = slot;
    }
    const T* kbase = static_cast<const T*>(a.kv.d_base) +
                     static_cast<int64_t>(blocks[slot]) * a.kv.block_stride +
                     static_cast<int64_t>(g) * w * D + part * E;
    const T* vbase = kbase + a.kv.value_offset;
    const int key_end = min(key0 + kDecodeTileKeys, n_keys);
    for (int it0 = 0; it0 < S::kIters; it0 += S::kUnroll) {
      uint4 kr[S::kUnroll], vr[S::kUnroll];
#pragma unroll
      for (int x = 0; x < S::kUnroll; ++x) {
        const int key = key0 + (it0 + x) * S::kGroups + grp;
        if (key < key_end) {
          kr[x] = __ldg(reinterpret_cast<const uint4*>(kbase + static_cast<int64_t>(key) * D));
          vr[x] = __ldg(reinterpret_cast<const uint4*>(vbase + static_cast<int64_t>(key) * D));
        } else {
          kr[x] = make_uint4(0, 0, 0, 0);
          vr[x] = make_uint4(0, 0, 0, 0);
        }
      }
      // The group's kUnroll scores first, then one online-softmax update for
      // all of them: one rescale of the state and kUnroll + 1 exponentials
      // per kUnroll keys (an update per key took 2·kUnroll; the group's
      // threads all run it). H200 (bench/results/cuda_h200_prefill.md):
      // batched longheads decode 72% -> 78% of the read bandwidth, `full`
      // at 128K 71% -> 82%; blocks of one 64-key tile (4K contexts) 5-10%
      // slower.
      float s[S::kUnroll];
      float mx = m;
#pragma unroll
      for (int x = 0; x < S::kUnroll; ++x) {
        const int key = key0 + (it0 + x) * S::kGroups + grp;
        float kf[E];
        Unpack16<T>(kr[x], kf);
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) dot += qv[e] * kf[e];
#pragma unroll
        for (int o = S::kTpk / 2; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        s[x] = key < key_end ? dot : -INFINITY;
        mx = fmaxf(mx, s[x]);
      }
      if (mx == -INFINITY) continue;  // no key of the group's so far
      if (mx > m) {  // m = -inf: corr = 0, and l and acc are 0 anyway
        const float corr = exp2f(m - mx);
        l *= corr;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[e] *= corr;
        m = mx;
      }
#pragma unroll
      for (int x = 0; x < S::kUnroll; ++x) {
        if (s[x] == -INFINITY) continue;  // past the list's keys
        float vf[E];
        Unpack16<T>(vr[x], vf);
        const float pr = exp2f(s[x] - m);
        l += pr;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[e] += pr * vf[e];
      }
    }
  }
  // Merge the groups of this block.
  if (part == 0) {
    part_m[grp] = m;
    part_l[grp] = l;
  }
#pragma unroll
  for (int e = 0; e < E; ++e) part_acc[grp][part * E + e] = acc[e];
  __syncthreads();
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float mx = -INFINITY;
    for (int gi = 0; gi < S::kGroups; ++gi) mx = fmaxf(mx, part_m[gi]);
    float sum = 0.0f, out = 0.0f;
    if (mx != -INFINITY) {
      for (int gi = 0; gi < S::kGroups; ++gi) {
        if (part_m[gi] == -INFINITY) continue;
        const float wgt = exp2f(part_m[gi] - mx);
        sum += part_l[gi] * wgt;
        out += part_acc[gi][c] * wgt;
      }
    }
    if (a.n_splits == 1) {
      a.out.Store(static_cast<int64_t>(row) * D + c, out / sum);
    } else {
      float* ws = a.ws + (static_cast<int64_t>(row) * a.n_splits + split) * (D + 2);
      ws[2 + c] = out;
      if (c == 0) {
        ws[0] = mx;
        ws[1] = sum;
      }
    }
  }
}

template <typename T, int D>
CudaStatus LaunchDecode(const DecodeAttentionParams& p, DecodeArgs a, int64_t rows) {
  using S = DecodeShape<T, D>;
  cudaStream_t stream = AsStream(p.stream);
  DecodeKernel<T, D><<<dim3(static_cast<unsigned>(rows), a.n_splits), S::kThreads, 0, stream>>>(a);
  HR_CUDA_RETURN_IF_ERROR(LaunchStatus());
  if (a.n_splits > 1) {
    HR_CUDA_RETURN_IF_ERROR(CombineSplits<D>(a.ws, rows, a.n_splits, a.out, stream));
  }
  return CudaStatus::kOk;
}

}  // namespace

size_t DecodeAttentionWorkspaceBytes(int32_t n_queries, int32_t n_heads, int32_t head_dim,
                                     int32_t splits) {
  return SplitWorkspaceBytes(static_cast<int64_t>(n_queries) * n_heads, head_dim, splits);
}

CudaStatus DecodeAttention(const DecodeAttentionParams& p) {
  const PagedKvLayer& kv = p.kv;
  if (p.out_dtype == DType::kF16) return CudaStatus::kUnsupported;
  if (reinterpret_cast<uintptr_t>(p.d_out) % 8 != 0) return CudaStatus::kInvalidShape;  // pairs are stored
  if (p.n_queries < 0 || p.n_heads <= 0 || kv.n_kv_heads <= 0 || p.n_heads % kv.n_kv_heads != 0 ||
      p.list_len <= 0 || kv.chunk_size <= 0 || p.rope == nullptr ||
      p.rope->head_dim() != kv.head_dim || p.rope->step() != kv.chunk_size ||
      p.rope->n_steps() < p.list_len) {
    return CudaStatus::kInvalidShape;
  }
  const int64_t rows = static_cast<int64_t>(p.n_queries) * p.n_heads;
  if (rows == 0) return CudaStatus::kOk;
  if (rows > (int64_t{1} << 31) - 1) return CudaStatus::kInvalidShape;
  DecodeArgs a;
  a.q_local = p.d_q_local;
  a.positions = p.d_positions;
  a.blocks = p.d_blocks;
  a.list_len = p.list_len;
  a.n_heads = p.n_heads;
  a.group = p.n_heads / kv.n_kv_heads;
  a.kv = kv;
  a.step_cos = p.rope->d_step_cos();
  a.step_sin = p.rope->d_step_sin();
  a.adjacent = p.rope->style() == RopeStyle::kAdjacent;
  a.scale_log2 = p.scale * kLog2e;
  a.out = MakeOutRows(p.d_out, p.out_dtype);
  a.ws = p.d_workspace;
  a.tiles_per_chunk = (kv.chunk_size + kDecodeTileKeys - 1) / kDecodeTileKeys;
  // Splits: enough blocks for a few waves, at least one tile each, as many
  // as the workspace holds.
  DeviceLimits limits;
  HR_CUDA_RETURN_IF_ERROR(CurrentDeviceLimits(&limits));
  const int64_t total_tiles = static_cast<int64_t>(p.list_len) * a.tiles_per_chunk;
  int64_t splits = (static_cast<int64_t>(limits.sm_count) * 8 + rows - 1) / rows;
  splits = std::min(splits, total_tiles);
  if (p.max_splits > 0) splits = std::min<int64_t>(splits, p.max_splits);
  const int64_t fits =
      p.d_workspace == nullptr
          ? 0
          : static_cast<int64_t>(p.workspace_bytes /
                                 DecodeAttentionWorkspaceBytes(p.n_queries, p.n_heads, kv.head_dim, 1));
  splits = std::min<int64_t>({splits, fits, 65535});
  a.n_splits = static_cast<int>(std::max<int64_t>(1, splits));
  HR_DISPATCH_DTYPE(kv.dtype, {
    HR_DISPATCH_HEAD_DIM(kv.head_dim, { return LaunchDecode<T, D>(p, a, rows); })
  })
}

}  // namespace hr::cuda
