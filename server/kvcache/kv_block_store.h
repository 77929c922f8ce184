// The KV block bookkeeping that the prefix cache and a worker's admission
// need, whatever memory holds the blocks: host memory (BlockPool,
// block_pool.h) or a CUDA device (the CUDA backend's cache,
// server/engine/cuda_engine.h).
//
// Blocks are ids handed out by the store's owner; each holds one chunk of one
// sequence (keys, values and summaries of every layer) and carries a
// reference count: a block is recycled when its count drops to zero.
// Byte counts are the store's own accounting (budget_bytes() -
// live_bytes() can always be allocated).
//
// Thread-safety: as the implementation's (both are one worker thread's).
#ifndef HEADROOM_SERVER_KVCACHE_KV_BLOCK_STORE_H_
#define HEADROOM_SERVER_KVCACHE_KV_BLOCK_STORE_H_

#include <cstdint>

namespace hr {

class KvBlockStore {
 public:
  virtual ~KvBlockStore() = default;

  virtual void Retain(int32_t block) = 0;
  // Drops one reference; the block is recycled at zero.
  virtual void Release(int32_t block) = 0;
  virtual int32_t ref_count(int32_t block) const = 0;
  virtual int32_t chunk_size(int32_t block) const = 0;

  // Bytes one block of `chunk_size` tokens takes.
  virtual int64_t BlockBytes(int32_t chunk_size) const = 0;
  virtual int64_t budget_bytes() const = 0;
  // Bytes of live blocks (reference count > 0).
  virtual int64_t live_bytes() const = 0;
  virtual int64_t blocks_in_use() const = 0;
  // The one chunk size every block has, or 0 when blocks of any size can be
  // allocated.
  virtual int32_t fixed_chunk_size() const { return 0; }
};

}  // namespace hr

#endif  // HEADROOM_SERVER_KVCACHE_KV_BLOCK_STORE_H_
