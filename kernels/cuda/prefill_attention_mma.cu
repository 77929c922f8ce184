// Tensor-core prefill attention (kernels/cuda/attention.h, "tensor cores").
//
// Block: 128 queries of one head inside one chunk (prefill_span.cuh) in
// 16-row m-tiles, M per warp (PrefillAttentionParams::warp_rows): 8 warps of
// one, or 4 warps of two (head_dim 64; each key and value fragment then
// feeds two products, as in FlashAttention-2's 128-row blocks of 4 warps);
// one split of the chunk ids [j_lo, j_hi]
// (blocks numbered heaviest first over the launch: span_tiles.h SpanBlockAt).
// Threads 0..127 each follow one query's list; the block walks the union of
// the lists' entries in the split, in chunk order. The block first copies
// its 128 local-RoPE queries (FP32, cp.async) into shared memory, once. For
// each chunk j of the union:
//   1. each thread rotates its own elements of its warp's query fragments
//      for their rows' slots (FP32, from the shared copy; RotateFragments),
//      scaled by scale·log2(e) and rounded to T, straight into the A
//      fragments of Q·Kᵀ (rows that did not select j: zero, and masked); a
//      warp none of whose rows selected j skips this;
//   2. for each 64-key tile of chunk j (cp.async into shared memory, the
//      tail zero-filled): S = Q·Kᵀ (mma.sync m16n8k16, FP32 accumulation),
//      masks on edge tiles only (unselected row, key past the chunk's end,
//      causal inside the own chunk), online softmax in FP32 per row (log2
//      domain), P rounded to T, O += P·V (V fragments by ldmatrix.trans).
//      A warp none of whose rows selected j skips the products (with
//      per-token lists the union is often wider than one warp's lists).
// The accumulator layout of S is the A-fragment layout of P (FlashAttention-2),
// so P never leaves registers. One split writes the output; several write
// partial states merged by CombineSplits.
//
// The key and value tiles are double-buffered (cp.async) with one barrier per
// tile: after it, the next tile (of this chunk, or the first of the next
// chunk of the union, found one step ahead) is issued into the buffer every
// warp has finished with, and is in flight while this one is multiplied; each
// walker loads its list's next entry one walk ahead.
//
// Shared memory (D = 64): F32 queries 36 KB and 2 x (key, value) tiles of
// T, 9 KB each (rows padded by 8 elements: ldmatrix and the fragments' 8-byte
// query loads are free of bank conflicts) = 73 KB; two blocks per SM: 16
// warps at <= 128 registers (M = 1), or 8 warps at <= 255 (M = 2: 243, no
// spills, ptxas sm_90). Earlier forms (bench/results/cuda_h100.md,
// cuda_h200_prefill.md): the whole block rotated its 128 queries together
// into a shared T copy (a thread per channel pair of 16 rows, then a block
// barrier: 25% of the kernel's instructions at 4096 tokens), later each warp
// its own 16 rows (two threads per row, the FP32 queries read again from
// L1/L2 for every chunk), and both read the fragments back by ldmatrix
// (the register rotation took the kernel from 2.54 to 2.15 ms at 4096
// tokens, `full`, 12 layers, H200);
// 64-query blocks, four per SM, were as fast for full attention and a little
// faster with per-token lists; exp2 by ex2.approx and fixed-count tile loads
// took 18% of the instructions off; four channel pairs per thread in the
// block-wide rotation was slower at some lengths (more spills), and was
// reverted.
#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/prefill_attention_mma.cuh"
#include "kernels/cuda/prefill_span.cuh"
#include "kernels/cuda/split_combine.cuh"

namespace hr::cuda {
namespace {

constexpr int kRows = 128;             // queries per block
constexpr int kWalkWarps = kRows / 32;  // warps of the list walkers (one thread per query)
constexpr int kKeys = 64;               // keys per shared-memory tile

// The block's warps when each takes M m-tiles (16 query rows each) of the
// block's 128 rows: M = 1, 8 warps; M = 2, 4 warps of 32 rows, whose key and
// value fragments (ldmatrix) each feed two products instead of one.
template <int M>
constexpr int kThreadsOf = 32 * (kRows / (16 * M));

struct MmaArgs : PrefillSpanArgs {
  float* ws;  // [n_queries·n_heads][n_splits][2 + D] when n_splits > 1
  int n_splits;
};

// Shared rows are padded by 8 elements: ldmatrix of the T tiles, and the
// 8-byte loads of a fragment's F32 query elements, are free of bank conflicts.
template <int D>
constexpr int kPad = D + 8;

template <int D>
constexpr int SmemBytes() {  // F32 queries, 2 x (key, value) tiles of T, row steps, reductions
  return kRows * kPad<D> * 4 + 4 * kKeys * kPad<D> * 2 + (2 * kRows + 2 * kWalkWarps) * 4;
}

// Blocks per SM the kernel is compiled for (registers <= 65536 / (threads · this)).
template <int D>
constexpr int MinBlocks() {
  return D == 64 ? 2 : 1;
}

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(p)));
}

// 16 bytes global -> shared; zero-filled when !in (gmem must still be valid).
__device__ __forceinline__ void CpAsync16(uint32_t smem, const void* gmem, bool in) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(in ? 16 : 0));
}

template <typename T>
__device__ __forceinline__ uint32_t Pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// c (16x8, FP32) += a (16x16, row) · b (16x8, col).
template <typename T>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two T ones, a B-fragment register of a block of ones.
template <typename T>
constexpr uint32_t kOnes2 = std::is_same_v<T, __nv_bfloat16> ? 0x3F803F80u : 0x3C003C00u;

// 2^x by the MUFU unit alone (ex2.approx.ftz: relative error ~2^-22, results
// below 2^-126 flushed to zero, 2^-inf = 0). exp2f adds a range fix-up per
// call (a compare and two predicated multiplies): a quarter of the softmax's
// instructions in the SASS profile (bench/results/cuda_h200_prefill.md). The
// probabilities are rounded to T (8 or 11 bits) before their products anyway.
__device__ __forceinline__ float Exp2Approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Online-softmax update of one query row from this thread's 16 scores of a
// tile (s[n][e0], s[n][e0 + 1] for the 8 key groups); the row's four threads
// (a quad) agree on the maximum. Scores become probabilities in place; the
// returned factor rescales what the row accumulated so far (its output and
// its sum, which P·V's block of ones adds to).
__device__ __forceinline__ float SoftmaxRow(float (&s)[8][4], int e0, float& m) {
  float mx = -INFINITY;
#pragma unroll
  for (int n = 0; n < 8; ++n) mx = fmaxf(mx, fmaxf(s[n][e0], s[n][e0 + 1]));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_new = fmaxf(m, mx);
  const float base = m_new == -INFINITY ? 0.0f : m_new;  // a row masked so far stays at zero
  const float corr = Exp2Approx(m - base);
#pragma unroll
  for (int n = 0; n < 8; ++n) {
    s[n][e0] = Exp2Approx(s[n][e0] - base);
    s[n][e0 + 1] = Exp2Approx(s[n][e0 + 1] - base);
  }
  m = m_new;
  return corr;
}

// This thread's A fragments of Q·Kᵀ for chunk j: its two query rows (gq and
// gq + 8 of the warp's 16, slot steps st_lo and st_hi; < 0: chunk not
// selected, zeros) rotated for their slots from the block's F32 copy of the
// local-RoPE queries (q_lo, q_hi: the rows' columns 2·tq on), scaled by
// scale·log2(e) and rounded to T. Register r of k-step kk holds row
// gq + 8·(r & 1), columns kk·16 + 8·(r >> 1) + 2·tq and + 1 (m16n8k16): in
// the adjacent layout that is one rotation pair; in the half layout the
// first halves of two pairs, whose second halves are the same register of
// k-step kk + D/32. So each thread rotates its own fragment elements: no
// shared-memory round trip, no ldmatrix and no warp barrier per chunk (the
// rotated queries used to be written to shared memory and read back).
template <typename T, int D>
__device__ __forceinline__ void RotateFragments(const MmaArgs& a, const float* q_lo, const float* q_hi, int st_lo,
                                                int st_hi, int tq, uint32_t (&qa)[D / 16][4]) {
  const float sc_lo = st_lo >= 0 ? a.scale_log2 : 0.0f;
  const float sc_hi = st_hi >= 0 ? a.scale_log2 : 0.0f;
  const bool same = st_lo == st_hi;  // most tiles: the rows read chunk j at one slot
  const float* c_lo = a.step_cos + max(st_lo, 0) * (D / 2);
  const float* s_lo = a.step_sin + max(st_lo, 0) * (D / 2);
  const float* c_hi = a.step_cos + max(st_hi, 0) * (D / 2);
  const float* s_hi = a.step_sin + max(st_hi, 0) * (D / 2);
  if (a.adjacent) {  // pair k: columns 2k, 2k + 1
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int col = kk * 16 + h * 8, k = col / 2 + tq;
        const float cl = __ldg(c_lo + k) * sc_lo, sl = __ldg(s_lo + k) * sc_lo;
        const float ch = same ? cl : __ldg(c_hi + k) * sc_hi, sh = same ? sl : __ldg(s_hi + k) * sc_hi;
        const float2 x = *reinterpret_cast<const float2*>(q_lo + col);
        const float2 y = *reinterpret_cast<const float2*>(q_hi + col);
        qa[kk][2 * h] = Pack2<T>(x.x * cl - x.y * sl, x.x * sl + x.y * cl);
        qa[kk][2 * h + 1] = Pack2<T>(y.x * ch - y.y * sh, y.x * sh + y.y * ch);
      }
    }
  } else {  // pair k: columns k, k + D/2
#pragma unroll
    for (int kk = 0; kk < D / 32; ++kk) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int col = kk * 16 + h * 8;  // pairs col + 2·tq and + 1
        float2 cl = __ldg(reinterpret_cast<const float2*>(c_lo + col + 2 * tq));
        float2 sl = __ldg(reinterpret_cast<const float2*>(s_lo + col + 2 * tq));
        cl = make_float2(cl.x * sc_lo, cl.y * sc_lo);
        sl = make_float2(sl.x * sc_lo, sl.y * sc_lo);
        float2 ch = cl, sh = sl;
        if (!same) {
          ch = __ldg(reinterpret_cast<const float2*>(c_hi + col + 2 * tq));
          sh = __ldg(reinterpret_cast<const float2*>(s_hi + col + 2 * tq));
          ch = make_float2(ch.x * sc_hi, ch.y * sc_hi);
          sh = make_float2(sh.x * sc_hi, sh.y * sc_hi);
        }
        const float2 x = *reinterpret_cast<const float2*>(q_lo + col);  // first halves
        const float2 u = *reinterpret_cast<const float2*>(q_lo + col + D / 2);  // their second halves
        const float2 y = *reinterpret_cast<const float2*>(q_hi + col);
        const float2 v = *reinterpret_cast<const float2*>(q_hi + col + D / 2);
        qa[kk][2 * h] = Pack2<T>(x.x * cl.x - u.x * sl.x, x.y * cl.y - u.y * sl.y);
        qa[kk + D / 32][2 * h] = Pack2<T>(x.x * sl.x + u.x * cl.x, x.y * sl.y + u.y * cl.y);
        qa[kk][2 * h + 1] = Pack2<T>(y.x * ch.x - v.x * sh.x, y.y * ch.y - v.y * sh.y);
        qa[kk + D / 32][2 * h + 1] = Pack2<T>(y.x * sh.x + v.x * ch.x, y.y * sh.y + v.y * ch.y);
      }
    }
  }
}

// The next chunk of the union inside the split [.., j_hi]: the smallest next
// entry over the walkers (threads 0..kRows-1, one query's list each: `list`
// its ListEntry row in chunk c, `next` its position, `entry` the list's value
// there, or INT_MAX past the end,
// loaded one walk ahead so that its latency hides behind a chunk's work).
// Each row's slot step for that chunk goes to row_step (-1: not selected) and
// its walker moves on. INT_MAX: the union is exhausted. Ends with the block
// synchronized on `red`; row_step is visible after the caller's next
// __syncthreads.
__device__ __forceinline__ int WalkUnion(const PrefillSpanArgs& a, int64_t list, int c, bool walker, int& next,
                                         int& entry, int L, int j_hi, int* red, int* row_step) {
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int mine = walker && entry <= j_hi ? entry : INT_MAX;
  int mn = mine;
  for (int off = 16; off > 0; off /= 2) mn = min(mn, __shfl_xor_sync(0xffffffffu, mn, off));
  if (lane == 0 && warp < kWalkWarps) red[warp] = mn;
  __syncthreads();
  int j = red[0];
#pragma unroll
  for (int i = 1; i < kWalkWarps; ++i) j = min(j, red[i]);
  if (tid < kRows) {
    const bool sel = j != INT_MAX && mine == j;
    row_step[tid] = sel ? L - 1 - next : -1;
    if (sel) {
      ++next;
      entry = next < L ? ListEntry(a, list, next, c) : INT_MAX;
    }
  }
  return j;
}

// The keys of KV head g in block `block` (its values a.kv.value_offset further).
template <typename T, int D>
__device__ __forceinline__ const T* ChunkKeys(const MmaArgs& a, int g, int block) {
  return static_cast<const T*>(a.kv.d_base) + static_cast<int64_t>(block) * a.kv.block_stride +
         static_cast<int64_t>(g) * a.kv.chunk_size * D;
}

// Issues the cp.async copies of keys [kt, kt + kKeys) of a chunk whose keys
// start at `chunk` (those at or past `keys` zero-filled) into the tile pair
// at shared address `tile` (keys, then values). Thread t copies 16-byte parts
// t % (D/8) of keys t / (D/8) + i·kKeyStep: a fixed trip count, the shared
// offsets constant per thread (a loop over threadIdx.x compiled to a general
// loop with its address arithmetic redone per part). The chunk's block is
// read once per chunk, not per tile (its block-table read was on the way of
// every tile's prefetch).
template <typename T, int D, int kThreads>
__device__ __forceinline__ void LoadTile(const MmaArgs& a, const T* chunk, int kt, int keys, uint32_t tile) {
  constexpr int P = kPad<D>, kParts = D / 8, kKeyStep = kThreads / kParts;
  static_assert(kKeys % kKeyStep == 0, "whole key rows per pass");
  const int key0 = threadIdx.x / kParts, part = threadIdx.x % kParts;
  const T* kbase = chunk + kt * D + part * 8;  // within one block
  const T* vbase = kbase + a.kv.value_offset;
  const uint32_t dst = tile + (key0 * P + part * 8) * static_cast<uint32_t>(sizeof(T));
#pragma unroll
  for (int i = 0; i < kKeys / kKeyStep; ++i) {
    const int key = key0 + i * kKeyStep;
    const bool in = kt + key < keys;
    const int off = in ? key * D : 0;
    CpAsync16(dst + i * kKeyStep * P * sizeof(T), kbase + off, in);
    CpAsync16(dst + (kKeys + i * kKeyStep) * P * sizeof(T), vbase + off, in);
  }
}

template <typename T, int D, int M>
__global__ void __launch_bounds__(kThreadsOf<M>, MinBlocks<D>()) PrefillMmaKernel(MmaArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int P = kPad<D>;  // elements per shared row
  constexpr int kThreads = kThreadsOf<M>;
  extern __shared__ __align__(16) unsigned char smem[];
  float* qf = reinterpret_cast<float*>(smem);                // [kRows][P] local-RoPE queries, F32
  T* kv_tiles = reinterpret_cast<T*>(qf + kRows * P);        // [2 buffers][keys, values][kKeys][P]
  int* row_step = reinterpret_cast<int*>(kv_tiles + 4 * kKeys * P);  // [2][kRows] slot step, -1: not selected
  int* red = row_step + 2 * kRows;                           // [2][kWalkWarps]

  const SpanBlock blk = SpanBlockAt(blockIdx.x, a.tiles.Total(), a.n_splits, a.n_heads);
  const int h = blk.head, z = blk.split;
  const int g = h / a.group;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  int q0, q_end;  // this tile's queries (span indices), all in chunk c
  a.tiles.Range(blk.tile, &q0, &q_end);
  if (q_end <= q0) return;
  const int w = a.kv.chunk_size;
  const int c = static_cast<int>((a.pos0 + q0) / w);
  const int L = a.list_stride;
  const int own_keys = static_cast<int>((a.pos0 + q_end - 1) % w) + 1;
  const int j_lo = static_cast<int>(static_cast<int64_t>(z) * (c + 1) / a.n_splits);
  const int j_hi = static_cast<int>(static_cast<int64_t>(z + 1) * (c + 1) / a.n_splits) - 1;
  const auto keys_of = [&](int j) { return j == c ? own_keys : w; };

  // Thread r < kRows follows query q0 + r's list from its first entry >= j_lo
  // (past the -1 padding of a shorter list).
  const bool walker = tid < kRows && q0 + tid < q_end;
  const int64_t list = static_cast<int64_t>(q0 + (walker ? tid : 0)) * a.n_heads + h;  // ListEntry row
  int next = 0, entry = INT_MAX;
  if (walker) {
    if (a.chunks == nullptr) next = max(0, L - 1 - c + j_lo);  // dense: straight to chunk j_lo
    while (next < L && ListEntry(a, list, next, c) < j_lo) ++next;
    if (next < L) entry = ListEntry(a, list, next, c);
  }

  // This thread's fragment rows: in m-tile mi of the warp's M, rows
  // row0 + 16·mi + gq ("lo") and + 8 ("hi"); u0 is the offset in chunk c of
  // the warp's first row.
  const int gq = lane / 4, tq = lane % 4;
  const int row0 = warp * 16 * M;
  const int u0 = static_cast<int>((a.pos0 + q0 + row0) % w);
  // The tile's local-RoPE queries of head h (row rr at q_tile + rr·row_elems;
  // rows past the tile's last query copy the last one, and are masked) into
  // qf, once: every chunk rotates them from there (RotateFragments). Their
  // own cp.async group, ahead of the first key tile's.
  {
    const float* q_tile = a.q_local + (static_cast<int64_t>(q0) * a.n_heads + h) * D;
    const int row_elems = a.n_heads * D, last_row = q_end - 1 - q0;
    constexpr int kParts = D / 4;  // 16-byte parts per row
    static_assert(kRows * kParts % kThreads == 0, "a fixed count of copies per thread");
#pragma unroll
    for (int i = 0; i < kRows * kParts / kThreads; ++i) {
      const int part = (tid + i * kThreads) % kParts, rr = (tid + i * kThreads) / kParts;
      CpAsync16(SmemAddr(qf + rr * P + part * 4), q_tile + min(rr, last_row) * row_elems + part * 4, true);
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  }
  float o[M][D / 8][4];
  float m_lo[M], m_hi[M];
  // The rows' sums of probabilities, as one more accumulator column block:
  // P (rounded to T, as it enters P·V) times a block of ones, so that each
  // thread's elements hold its two rows' whole sums (16 FADD per row and
  // tile and the quad reduction at the end replaced by 4 HMMA per tile).
  float l_acc[M][4];
#pragma unroll
  for (int mi = 0; mi < M; ++mi) {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[mi][n][0] = o[mi][n][1] = o[mi][n][2] = o[mi][n][3] = 0.0f;
    m_lo[mi] = m_hi[mi] = -INFINITY;
    l_acc[mi][0] = l_acc[mi][1] = l_acc[mi][2] = l_acc[mi][3] = 0.0f;
  }

  int cur = 0, buf = 0;
  int j = WalkUnion(a, list, c, walker, next, entry, L, j_hi, red, row_step);
  int block_j = j != INT_MAX ? a.block_table[j] : 0;  // chunk j's block
  const uint32_t tiles_smem = SmemAddr(kv_tiles);  // buffer b's key tile at + b · 2 · kKeys · P · sizeof(T)
  if (j != INT_MAX) LoadTile<T, D, kThreads>(a, ChunkKeys<T, D>(a, g, block_j), 0, keys_of(j), tiles_smem);
  asm volatile("cp.async.commit_group;\n" ::: "memory");
  // This thread's query copies have landed (the key tile may still be in
  // flight); the barrier in the first WalkUnion below shows them to all.
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
  while (j != INT_MAX) {
    const int* steps = row_step + cur * kRows;
    const int j_next =
        WalkUnion(a, list, c, walker, next, entry, L, j_hi, red + kWalkWarps * (cur ^ 1), row_step + (cur ^ 1) * kRows);
    // 1. This thread's query fragments, rotated for their rows' slots in
    //    chunk j. A warp none of whose rows selected chunk j skips them and
    //    its products: with every score masked they would leave m, l and o
    //    exactly as they are.
    int st_lo[M], st_hi[M];
    bool any = false, all = true;
#pragma unroll
    for (int mi = 0; mi < M; ++mi) {
      st_lo[mi] = steps[row0 + 16 * mi + gq];
      st_hi[mi] = steps[row0 + 16 * mi + gq + 8];
      any = any || st_lo[mi] >= 0 || st_hi[mi] >= 0;
      all = all && st_lo[mi] >= 0 && st_hi[mi] >= 0;
    }
    const bool warp_reads = __any_sync(0xffffffffu, any);
    const bool all_rows = __all_sync(0xffffffffu, all);  // no row mask
    uint32_t qa[M][D / 16][4];
    if (warp_reads) {
#pragma unroll
      for (int mi = 0; mi < M; ++mi) {
        const float* q_lo = qf + (row0 + 16 * mi + gq) * P + 2 * tq;  // the fragment columns of the rows
        RotateFragments<T, D>(a, q_lo, q_lo + 8 * P, st_lo[mi], st_hi[mi], tq, qa[mi]);
      }
    }
    const int keys_j = keys_of(j);
    const int block_next = j_next != INT_MAX ? a.block_table[j_next] : 0;

    // 2. Key tiles of chunk j. One barrier per tile: after it, this tile has
    //    landed for every thread and every warp is done with the previous
    //    tile, whose buffer then takes the next tile while this one is used.
    for (int kt = 0; kt < keys_j; kt += kKeys) {
      asm volatile("cp.async.wait_group 0;\n" ::: "memory");
      __syncthreads();
      const bool same = kt + kKeys < keys_j;  // the next tile is this chunk's, else the next chunk's first
      if (same || j_next != INT_MAX) {
        LoadTile<T, D, kThreads>(a, ChunkKeys<T, D>(a, g, same ? block_j : block_next), same ? kt + kKeys : 0,
                                 same ? keys_j : keys_of(j_next),
                                 tiles_smem + (buf ^ 1) * (2 * kKeys * P * static_cast<uint32_t>(sizeof(T))));
      }
      asm volatile("cp.async.commit_group;\n" ::: "memory");
      const T* ks = kv_tiles + buf * 2 * kKeys * P;
      const T* vs = ks + kKeys * P;
      buf ^= 1;
      if (!warp_reads) continue;

      float s[M][8][4];
#pragma unroll
      for (int mi = 0; mi < M; ++mi) {
#pragma unroll
        for (int n = 0; n < 8; ++n) s[mi][n][0] = s[mi][n][1] = s[mi][n][2] = s[mi][n][3] = 0.0f;
      }
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          LdMatrixX4(b, ks + (np * 16 + lane % 8 + (lane / 16) * 8) * P + kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
          for (int mi = 0; mi < M; ++mi) {
            Mma<T>(s[mi][2 * np], qa[mi][kk], b[0], b[1]);
            Mma<T>(s[mi][2 * np + 1], qa[mi][kk], b[2], b[3]);
          }
        }
      }
      // Masks. Per key only on edge tiles: past the chunk's end, or in the
      // own chunk a tile reaching past the warp's first row (offset u0; the
      // causal triangle). Elsewhere only whole rows that did not select j
      // (per-token lists: most tiles; per key, that pass was ~340
      // instructions against 32 here).
      if ((j == c && kt + kKeys - 1 > u0) || kt + kKeys > keys_j) {
        // A row masks its keys from lim on: the chunk's end, in the own
        // chunk its own offset + 1, and all of them if it did not select j;
        // as offsets in this thread's part of the tile (n·8 + e).
        const int base = kt + 2 * tq;
#pragma unroll
        for (int mi = 0; mi < M; ++mi) {
          const int u_lo = u0 + 16 * mi + gq, u_hi = u_lo + 8;  // offsets in chunk c (rows of one chunk)
          const int lim_lo = (st_lo[mi] < 0 ? 0 : j == c ? min(keys_j, u_lo + 1) : keys_j) - base;
          const int lim_hi = (st_hi[mi] < 0 ? 0 : j == c ? min(keys_j, u_hi + 1) : keys_j) - base;
#pragma unroll
          for (int n = 0; n < 8; ++n) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              if (n * 8 + e >= lim_lo) s[mi][n][e] = -INFINITY;
              if (n * 8 + e >= lim_hi) s[mi][n][2 + e] = -INFINITY;
            }
          }
        }
      } else if (!all_rows) {
#pragma unroll
        for (int mi = 0; mi < M; ++mi) {
#pragma unroll
          for (int n = 0; n < 8; ++n) {
            if (st_lo[mi] < 0) s[mi][n][0] = s[mi][n][1] = -INFINITY;
            if (st_hi[mi] < 0) s[mi][n][2] = s[mi][n][3] = -INFINITY;
          }
        }
      }
      float corr_lo[M], corr_hi[M];
      bool moved = false;
#pragma unroll
      for (int mi = 0; mi < M; ++mi) {
        corr_lo[mi] = SoftmaxRow(s[mi], 0, m_lo[mi]);
        corr_hi[mi] = SoftmaxRow(s[mi], 2, m_hi[mi]);
        moved = moved || corr_lo[mi] != 1.0f || corr_hi[mi] != 1.0f;
      }
      // Once the rows' maxima settle, most tiles leave them unchanged
      // (corr = 2^0 = 1): the warp then skips the multiplications by one.
      if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
        for (int mi = 0; mi < M; ++mi) {
#pragma unroll
          for (int n = 0; n < D / 8; ++n) {
            o[mi][n][0] *= corr_lo[mi];
            o[mi][n][1] *= corr_lo[mi];
            o[mi][n][2] *= corr_hi[mi];
            o[mi][n][3] *= corr_hi[mi];
          }
          l_acc[mi][0] *= corr_lo[mi];
          l_acc[mi][1] *= corr_lo[mi];
          l_acc[mi][2] *= corr_hi[mi];
          l_acc[mi][3] *= corr_hi[mi];
        }
      }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        uint32_t pa[M][4];
#pragma unroll
        for (int mi = 0; mi < M; ++mi) {
          pa[mi][0] = Pack2<T>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
          pa[mi][1] = Pack2<T>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
          pa[mi][2] = Pack2<T>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
          pa[mi][3] = Pack2<T>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
        }
#pragma unroll
        for (int cp = 0; cp < D / 16; ++cp) {
          uint32_t b[4];
          LdMatrixX4Trans(b, vs + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * P + cp * 16 + (lane / 16) * 8);
#pragma unroll
          for (int mi = 0; mi < M; ++mi) {
            Mma<T>(o[mi][2 * cp], pa[mi], b[0], b[1]);
            Mma<T>(o[mi][2 * cp + 1], pa[mi], b[2], b[3]);
          }
        }
#pragma unroll
        for (int mi = 0; mi < M; ++mi) Mma<T>(l_acc[mi], pa[mi], kOnes2<T>, kOnes2<T>);
      }
    }
    j = j_next;
    block_j = block_next;
    cur ^= 1;
  }

#pragma unroll
  for (int mi = 0; mi < M; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int qi = q0 + row0 + 16 * mi + gq + 8 * half;
      if (qi >= q_end) continue;
      const float m = half == 0 ? m_lo[mi] : m_hi[mi], l = l_acc[mi][2 * half];
      const int64_t row = static_cast<int64_t>(qi) * a.n_heads + h;
      if (a.n_splits == 1) {
        const float inv = 1.0f / l;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          a.out.Store2(row * D + n * 8 + 2 * tq, o[mi][n][2 * half] * inv, o[mi][n][2 * half + 1] * inv);
        }
      } else {
        float* part = a.ws + (row * a.n_splits + z) * (D + 2);
        if (tq == 0) {
          part[0] = m;
          part[1] = l;
        }
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {  // 8-byte aligned: D + 2 and the offsets are even
          *reinterpret_cast<float2*>(part + 2 + n * 8 + 2 * tq) =
              make_float2(o[mi][n][2 * half], o[mi][n][2 * half + 1]);
        }
      }
    }
  }
#endif
}

template <typename T, int D, int M>
CudaStatus Launch(const PrefillAttentionParams& p, const MmaArgs& a) {
  const void* kernel = reinterpret_cast<const void*>(&PrefillMmaKernel<T, D, M>);
  HR_CUDA_RETURN_IF_ERROR(AllowSharedMemory(kernel, SmemBytes<D>()));
  const int64_t blocks = static_cast<int64_t>(a.tiles.Total()) * p.n_heads * a.n_splits;  // SpanBlockAt
  if (blocks > INT_MAX) return CudaStatus::kInvalidShape;
  const dim3 grid(static_cast<unsigned>(blocks));
  cudaStream_t stream = AsStream(p.stream);
  PrefillMmaKernel<T, D, M><<<grid, kThreadsOf<M>, SmemBytes<D>(), stream>>>(a);
  HR_CUDA_RETURN_IF_ERROR(LaunchStatus());
  if (a.n_splits > 1) {
    HR_CUDA_RETURN_IF_ERROR(
        CombineSplits<D>(a.ws, static_cast<int64_t>(p.n_queries) * p.n_heads, a.n_splits, a.out, stream));
  }
  return CudaStatus::kOk;
}

// M-tiles per warp for p (PrefillAttentionParams::warp_rows); 0: invalid.
// The kernel's choice, measured on an H200 (cuda_bench, PrefillAttention
// alone over a 256-query chunk, bench/results/cuda_h200_prefill.md): dense
// lists (`full`) 32 rows per warp, 5-8% faster at 4K-128K contexts; per-token
// lists 16, whose warps skip the chunks none of their rows selected (32 rows
// per warp were 20% slower at 64K-128K), equal at 4K-16K; lists of one chunk
// equal.
int MTiles(const PrefillAttentionParams& p) {
  if (p.warp_rows != 0 && p.warp_rows != 16 && p.warp_rows != 32) return 0;
  if (p.kv.head_dim != 64) return 1;
  return p.warp_rows == 32 || (p.warp_rows == 0 && p.d_chunks == nullptr) ? 2 : 1;
}

}  // namespace

bool PrefillTensorCoresApply(const PagedKvLayer& kv, const DeviceLimits& limits) {
  return (kv.dtype == DType::kBF16 || kv.dtype == DType::kF16) && (kv.head_dim == 64 || kv.head_dim == 128) &&
         limits.cc_major >= 8 && (kv.head_dim == 64 ? SmemBytes<64>() : SmemBytes<128>()) <= limits.max_smem_optin;
}

namespace {
// Concurrent blocks of the kernel on the device (PrefillSplits' slots).
int64_t Slots(int head_dim, const DeviceLimits& limits) {
  return static_cast<int64_t>(limits.sm_count) * (head_dim == 128 ? MinBlocks<128>() : MinBlocks<64>());
}
}  // namespace

int32_t PrefillTensorCoresSplits(const PrefillAttentionParams& p, const DeviceLimits& limits) {
  const SpanTiles tiles = SpanTiles::Make(p.pos0, p.n_queries, p.kv.chunk_size, kRows);
  return PrefillSplits(tiles, p.pos0, p.list_stride, p.n_heads, Slots(p.kv.head_dim, limits), p.max_splits);
}

int32_t PrefillTensorCoresSplitsBound(int32_t n_heads, int32_t head_dim, const DeviceLimits& limits) {
  if (n_heads <= 0) return 1;
  const int64_t slots = Slots(head_dim, limits);
  return static_cast<int32_t>(std::max<int64_t>(1, (slots + n_heads - 1) / n_heads));
}

CudaStatus PrefillAttentionTensorCores(const PrefillAttentionParams& p, const DeviceLimits& limits) {
  const PagedKvLayer& kv = p.kv;
  if (!PrefillTensorCoresApply(kv, limits)) return CudaStatus::kUnsupported;
  MmaArgs a;
  static_cast<PrefillSpanArgs&>(a) = MakePrefillSpanArgs(p, kRows);
  a.ws = p.d_workspace;
  // As many splits as wanted and as the workspace holds.
  const int64_t fits =
      p.d_workspace == nullptr
          ? 0
          : static_cast<int64_t>(p.workspace_bytes /
                                 PrefillAttentionWorkspaceBytes(p.n_queries, p.n_heads, kv.head_dim, 1));
  a.n_splits = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(PrefillTensorCoresSplits(p, limits), fits)));
  const int m = MTiles(p);
  if (m == 0) return CudaStatus::kInvalidShape;
  if (kv.dtype == DType::kBF16) {
    if (kv.head_dim == 128) return Launch<__nv_bfloat16, 128, 1>(p, a);
    return m == 2 ? Launch<__nv_bfloat16, 64, 2>(p, a) : Launch<__nv_bfloat16, 64, 1>(p, a);
  }
  if (kv.head_dim == 128) return Launch<__half, 128, 1>(p, a);
  return m == 2 ? Launch<__half, 64, 2>(p, a) : Launch<__half, 64, 1>(p, a);
}

}  // namespace hr::cuda
