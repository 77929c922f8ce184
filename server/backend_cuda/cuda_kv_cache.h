// The paged KV cache in device memory (design.md §3): a fixed set of blocks of
// one chunk size, each holding one chunk of one sequence for every layer, and
// the chunks' summaries. The device twin of hr::BlockPool
// (server/kvcache/block_pool.h), with the layout of kernels/cuda/paged_kv.h:
//
//   kv         [n_layers][n_blocks][2][n_kv_heads][chunk_size][head_dim]  (keys, then values)
//   longheads  [n_layers][n_blocks][n_heads][head_dim]                    F32
//   bound      [n_layers][n_blocks][n_kv_heads][2][head_dim]              F32
//   mean       [n_layers][n_blocks][n_kv_heads][head_dim]                 F32
//
// Block ids and reference counts live on the host (so sequences can share
// complete blocks, as the prefix cache does); the memory is taken once, at
// Create, from a byte budget.
//
// Thread-safety: not thread-safe; one worker thread owns the cache.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_CUDA_KV_CACHE_H_
#define HEADROOM_SERVER_BACKEND_CUDA_CUDA_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/paged_kv.h"
#include "server/backend_cuda/device_buffer.h"
#include "server/kvcache/block_pool.h"

namespace hr {

class CudaKvCache : public KvBlockStore {
 public:
  // INVALID_ARGUMENT for a bad geometry or chunk size, or a budget below one
  // block; RESOURCE_EXHAUSTED when the device memory cannot be had.
  static absl::StatusOr<std::unique_ptr<CudaKvCache>> Create(const KvGeometry& geometry,
                                                             KvDType dtype, int32_t chunk_size,
                                                             int64_t budget_bytes);

  // A free block with reference count 1; RESOURCE_EXHAUSTED when none is left.
  absl::StatusOr<int32_t> Allocate();
  void Retain(int32_t block) override;
  // Drops one reference; the block is free again at zero.
  void Release(int32_t block) override;

  // Kernel views of one layer.
  cuda::PagedKvLayer Layer(int64_t layer) const;
  cuda::SummaryStore Summaries(int64_t layer) const;

  const KvGeometry& geometry() const { return geometry_; }
  KvDType dtype() const { return dtype_; }
  int32_t chunk_size() const { return chunk_size_; }
  int32_t n_blocks() const { return static_cast<int32_t>(refs_.size()); }
  int32_t free_blocks() const { return static_cast<int32_t>(free_.size()); }
  int32_t ref_count(int32_t block) const override { return refs_[block]; }
  // Device bytes one block takes over all layers (KV and summaries).
  static int64_t BlockBytes(const KvGeometry& geometry, KvDType dtype, int32_t chunk_size);

  // KvBlockStore: every block has chunk_size() tokens; the budget is what
  // the blocks taken at Create hold (at most the budget asked for).
  int32_t chunk_size(int32_t /*block*/) const override { return chunk_size_; }
  int64_t BlockBytes(int32_t chunk_size) const override {
    return BlockBytes(geometry_, dtype_, chunk_size);
  }
  int64_t budget_bytes() const override { return int64_t{n_blocks()} * BlockBytes(chunk_size_); }
  int64_t live_bytes() const override { return blocks_in_use() * BlockBytes(chunk_size_); }
  int64_t blocks_in_use() const override { return n_blocks() - free_blocks(); }
  int32_t fixed_chunk_size() const override { return chunk_size_; }

 private:
  CudaKvCache(const KvGeometry& geometry, KvDType dtype, int32_t chunk_size, int32_t n_blocks);

  const KvGeometry geometry_;
  const KvDType dtype_;
  const int32_t chunk_size_;
  DeviceBuffer kv_, longheads_, bound_, mean_;
  std::vector<int32_t> refs_;  // per block
  std::vector<int32_t> free_;  // stack of free block ids
};

// The kernels' dtype for a KV dtype.
cuda::DType ToCudaDType(KvDType dtype);

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_CUDA_KV_CACHE_H_
