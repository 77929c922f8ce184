// Paged KV storage: one block holds one chunk of one sequence for every layer.
//
// A block of chunk size w stores, per layer:
//   keys    [n_kv_heads][w][head_dim]  rotated by their offset inside the
//                                      chunk (local RoPE, design.md §3)
//   values  [n_kv_heads][w][head_dim]  as they are
// in the pool's KV dtype (F32, F16 or BF16), and the chunk summaries (F32,
// filled when the chunk completes):
//   longheads [n_heads][head_dim]          (per query head)
//   bound     [n_kv_heads][2][head_dim]    (min then max per channel)
//   mean      [n_kv_heads][head_dim]
//
// Blocks are allocated individually against a byte budget, so sequences with
// different chunk sizes share one pool; freed blocks are recycled per size.
// Reference counts let sequences share complete blocks (prefix cache).
//
// Thread-safety: not thread-safe. A pool belongs to one worker thread; the
// kernels that worker runs may read blocks from several threads at once.
#ifndef HEADROOM_SERVER_KVCACHE_BLOCK_POOL_H_
#define HEADROOM_SERVER_KVCACHE_BLOCK_POOL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "server/kvcache/kv_block_store.h"

namespace hr {

enum class KvDType { kF32, kF16, kBF16 };

struct KvGeometry {
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
};

class BlockPool : public KvBlockStore {
 public:
  BlockPool(const KvGeometry& geometry, KvDType dtype, int64_t budget_bytes);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block for `chunk_size` tokens with reference count 1.
  // RESOURCE_EXHAUSTED when the budget cannot hold it.
  absl::StatusOr<int32_t> Allocate(int32_t chunk_size);
  void Retain(int32_t block) override;
  // Drops one reference; the block is recycled at zero.
  void Release(int32_t block) override;

  // Writes token `u`'s key (already rotated) and value for one layer:
  // k, v are [n_kv_heads][head_dim].
  void Write(int32_t block, int64_t layer, int64_t u, const float* k, const float* v);

  // The keys (or values) of one (layer, kv head) as F32 [chunk_size][head_dim].
  // F32 pools return storage directly; others convert the first `n_tokens`
  // rows into `scratch` (REQUIRES: room for n_tokens · head_dim floats).
  const float* Keys(int32_t block, int64_t layer, int64_t kv_head, int64_t n_tokens,
                    float* scratch) const;
  const float* Values(int32_t block, int64_t layer, int64_t kv_head, int64_t n_tokens,
                      float* scratch) const;

  float* LongHeadsSummary(int32_t block, int64_t layer);  // [n_heads][head_dim]
  float* BoundSummary(int32_t block, int64_t layer);      // [n_kv_heads][2][head_dim]
  float* MeanSummary(int32_t block, int64_t layer);       // [n_kv_heads][head_dim]
  const float* LongHeadsSummary(int32_t block, int64_t layer) const;
  const float* BoundSummary(int32_t block, int64_t layer) const;
  const float* MeanSummary(int32_t block, int64_t layer) const;

  int32_t chunk_size(int32_t block) const override;
  int32_t ref_count(int32_t block) const override;
  const KvGeometry& geometry() const { return geometry_; }
  KvDType dtype() const { return dtype_; }
  int64_t budget_bytes() const override { return budget_bytes_; }
  // Bytes of storage allocated (live blocks and recycled ones kept for reuse).
  int64_t used_bytes() const { return used_bytes_; }
  // Bytes of live blocks (reference count > 0): budget_bytes() - live_bytes()
  // can always be allocated, recycled storage being given back on demand.
  int64_t live_bytes() const override { return live_bytes_; }
  int64_t blocks_in_use() const override { return blocks_in_use_; }
  // Bytes one block of `chunk_size` tokens takes.
  int64_t BlockBytes(int32_t chunk_size) const override;

 private:
  // Block K/V bytes from AllocateKvStorage (huge-page backed when large).
  struct FreeDeleter {
    void operator()(uint8_t* p) const;
  };
  using KvStorage = std::unique_ptr<uint8_t[], FreeDeleter>;
  static KvStorage AllocateKvStorage(size_t bytes);

  struct Block {
    KvStorage kv;                           // keys then values, per layer
    std::unique_ptr<float[]> summaries;     // per layer: longheads, bound, mean
    int32_t chunk_size = 0;
    int32_t refs = 0;
  };
  int64_t KvElementsPerLayer(int32_t chunk_size) const;
  int64_t SummaryFloatsPerLayer() const;
  const uint8_t* KvPtr(int32_t block, int64_t layer, bool values, int64_t kv_head) const;
  const float* ReadKv(int32_t block, int64_t layer, bool values, int64_t kv_head, int64_t n_tokens,
                      float* scratch) const;
  Block& At(int32_t block);
  const Block& At(int32_t block) const;

  const KvGeometry geometry_;
  const KvDType dtype_;
  const int64_t budget_bytes_;
  int64_t used_bytes_ = 0;
  int64_t live_bytes_ = 0;
  int64_t blocks_in_use_ = 0;
  std::vector<Block> blocks_;
  std::map<int32_t, std::vector<int32_t>> free_by_size_;  // recycled ids, storage kept
};

}  // namespace hr

#endif  // HEADROOM_SERVER_KVCACHE_BLOCK_POOL_H_
