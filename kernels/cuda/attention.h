// Block-sparse paged attention over (block, slot) lists (design.md §3).
//
// Keys are stored with local RoPE, so a query that reads the chunk at slot s
// of its list is rotated by (own_slot − s) · chunk_size more than its own
// local rotation: one rotation per slot, never a key rotation. The own chunk
// is the last entry of every list; the query reads its keys up to and
// including its own position. CPU reference: kernels/cpu/slot_attention.h.
#ifndef HEADROOM_KERNELS_CUDA_ATTENTION_H_
#define HEADROOM_KERNELS_CUDA_ATTENTION_H_

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/common.h"
#include "kernels/cuda/paged_kv.h"
#include "kernels/cuda/rope.h"

namespace hr::cuda {

// Decode (and any set of independent queries): split-K over the keys of each
// (query, head)'s list, flash-decoding style, then a combine step. Queries
// may belong to different sequences (each list names blocks directly).
struct DecodeAttentionParams {
  const float* d_q_local = nullptr;  // [n_queries][n_heads][head_dim], rotated by the offset inside its chunk
  const int32_t* d_positions = nullptr;  // [n_queries] absolute position of each query
  // [n_queries][n_heads][list_len] block at each slot, own chunk last; a
  // shorter list right-aligned with -1 before it (skipped), so the queries of
  // several sequences (lists of different lengths) go in one launch.
  const int32_t* d_blocks = nullptr;
  int32_t list_len = 0;
  int32_t n_queries = 0;
  int32_t n_heads = 0;                   // REQUIRES: n_heads % kv.n_kv_heads == 0
  PagedKvLayer kv;
  const RopeTables* rope = nullptr;      // step == kv.chunk_size, n_steps >= list_len
  float scale = 0.0f;                    // usually 1/sqrt(head_dim)
  void* d_out = nullptr;                 // [n_queries][n_heads][head_dim] of out_dtype, 8-byte aligned
  // kF32, or kBF16: the FP32 results rounded once to nearest even (the input
  // of a BF16 GEMM); kF16: kUnsupported.
  DType out_dtype = DType::kF32;
  // Partial results of the splits: DecodeAttentionWorkspaceBytes(...) bytes.
  // With less (or none), fewer splits (or one) are used.
  float* d_workspace = nullptr;
  size_t workspace_bytes = 0;
  int32_t max_splits = 0;                // 0: enough splits to fill the device
  Stream stream = nullptr;
};
CudaStatus DecodeAttention(const DecodeAttentionParams& p);
size_t DecodeAttentionWorkspaceBytes(int32_t n_queries, int32_t n_heads, int32_t head_dim,
                                     int32_t splits);
// Keys per split unit: lists are split at multiples of this inside each chunk.
constexpr int32_t kDecodeTileKeys = 64;

// Prefill: the queries at positions pos0 .. pos0+n_queries-1 of one sequence
// (a span over any number of chunks), each (query, head) with its own chunk
// list (exact per-token selection). Lists are right-aligned in rows of
// list_stride entries: a query whose list has L entries has them, ascending
// and ending with its own chunk, at [list_stride − L, list_stride), and −1
// before (lists of a span's chunks may differ in length). d_chunks = nullptr
// stands for the dense lists of full attention (a query in chunk c: chunks
// 0 .. c, right-aligned the same way; list_stride > the span's last chunk),
// computed in the kernels instead of read: no lists to build. Tiles of queries
// inside one chunk walk the union of their lists in chunk order; for each
// chunk every query is rotated for its own slot, and queries that did not
// select the chunk are masked (design.md §3). One launch covers the span.
//
// Two kernels:
//  - tensor cores (BF16/F16 stores, head_dim 64 or 128, compute capability
//    >= 8): 128 queries per block, mma.sync with FP32 accumulation; the
//    rotated queries and the softmax probabilities are rounded to the
//    store's dtype before their products (as FlashAttention does), so the
//    result is close to, not equal to, the FP32 reference. When the span's
//    tiles do not fill the device, or (full attention) its last tiles would
//    run on long after the rest, each tile's chunk ids are split among
//    several blocks (split-K, merged as in DecodeAttention; span_tiles.h
//    PrefillSplits).
//  - FP32 SIMT (F32 stores, other head sizes, or tensor_cores = false):
//    exact to FP32 rounding against cpu::SlotAttention.
struct PrefillAttentionParams {
  const float* d_q_local = nullptr;       // [n_queries][n_heads][head_dim], local RoPE, 16-byte aligned
  int64_t pos0 = 0;
  int32_t n_queries = 0;
  int32_t n_heads = 0;
  const int32_t* d_chunks = nullptr;      // [n_queries][n_heads][list_stride], right-aligned lists; nullptr: dense
  int32_t list_stride = 0;
  const int32_t* d_block_table = nullptr; // [chunk] -> block
  PagedKvLayer kv;
  const RopeTables* rope = nullptr;       // step == kv.chunk_size, n_steps >= list_stride
  float scale = 0.0f;
  void* d_out = nullptr;                  // [n_queries][n_heads][head_dim] of out_dtype, 8-byte aligned
  DType out_dtype = DType::kF32;          // as DecodeAttentionParams::out_dtype
  // Split partials of the tensor-core kernel: PrefillAttentionWorkspaceBytes
  // bytes per split; with less (or none), fewer splits (or one). 16-byte aligned.
  float* d_workspace = nullptr;
  size_t workspace_bytes = 0;
  int32_t max_splits = 0;                 // 0: as many as PrefillSplits plans
  bool tensor_cores = true;               // false: always the FP32 SIMT kernel
  // Tensor cores: query rows per warp, 16 or 32 (32: head_dim 64 only; 16
  // otherwise); 0: the kernel's choice (32 for dense lists at head_dim 64,
  // else 16). Anything else: kInvalidShape.
  int32_t warp_rows = 0;
  Stream stream = nullptr;
};
size_t PrefillAttentionWorkspaceBytes(int32_t n_queries, int32_t n_heads, int32_t head_dim,
                                      int32_t splits);
// The workspace PrefillAttention(p) would use at most on the current device
// (p's workspace fields ignored; 0 when it would not split).
size_t PrefillAttentionWorkspaceWanted(const PrefillAttentionParams& p);
// The most PrefillAttentionWorkspaceWanted returns on the current device for
// any span of at most n_queries queries of n_heads heads with max_splits set
// as given (0: no cap); 0 without a device.
size_t PrefillAttentionWorkspaceBound(int32_t n_queries, int32_t n_heads, int32_t head_dim, int32_t max_splits);
// Whether PrefillAttention runs on tensor cores for this store on the
// current device.
bool PrefillUsesTensorCores(const PagedKvLayer& kv);
CudaStatus PrefillAttention(const PrefillAttentionParams& p);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_ATTENTION_H_
