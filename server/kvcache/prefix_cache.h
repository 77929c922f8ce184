// Prefix cache: complete prompt chunks whose KV blocks (with summaries) a
// later request over the same document reuses instead of recomputing.
//
// A chunk is identified by a chained key: the key of the chunk before it (or
// a namespace for the first one), and its own tokens. The namespace must
// capture everything else the block's contents depend on (here: the
// long-context parameters, since every layer's K/V after the first depends on
// the attention policy). Entries keep their tokens and parent key, so a hash
// collision can never hand out a wrong block.
//
// The cache holds one reference on every block it lists. A block that only
// the cache references is evictable: EvictUntil() releases the least recently
// used of them until the pool has room.
//
// Thread-safety: Lookup(), Insert(), EvictUntil() and evictable_bytes() run
// on the worker thread that owns the pool. MatchedTokens() may be called from
// any thread (placement); the index is guarded by a mutex for that.
// Ownership: borrows the block store (must outlive the cache).
#ifndef HEADROOM_SERVER_KVCACHE_PREFIX_CACHE_H_
#define HEADROOM_SERVER_KVCACHE_PREFIX_CACHE_H_

#include <cstdint>
#include <list>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/kvcache/kv_block_store.h"

namespace hr {

class PrefixCache {
 public:
  explicit PrefixCache(KvBlockStore* pool);
  ~PrefixCache();  // releases every block it holds
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // Key of the chunk of `tokens` that follows the chunk keyed `parent`.
  static uint64_t ChunkKey(uint64_t parent, std::span<const int32_t> tokens);

  // The blocks of the longest run of cached chunks at the start of `tokens`
  // (chunks of `chunk_size`, at most `max_chunks`), under `namespace_key`.
  // Marks them recently used. The caller retains what it keeps.
  std::vector<int32_t> Lookup(uint64_t namespace_key, std::span<const int32_t> tokens,
                              int32_t chunk_size, int64_t max_chunks);

  // Same match, counted in tokens, without touching recency (any thread).
  int64_t MatchedTokens(uint64_t namespace_key, std::span<const int32_t> tokens,
                        int32_t chunk_size, int64_t max_chunks) const;

  // Lists `block` as the chunk `chunk_tokens` after `parent` (retains it).
  // No-op when that chunk is already cached. Returns the chunk's key.
  uint64_t Insert(uint64_t parent, std::span<const int32_t> chunk_tokens, int32_t block);

  // Releases least recently used evictable blocks until the pool has
  // `bytes` free under its budget, or nothing evictable is left. Returns
  // whether the room is there.
  bool EvictUntil(int64_t bytes);

  // Bytes of blocks only the cache references.
  int64_t evictable_bytes() const;
  int64_t blocks() const;

 private:
  struct Entry {
    uint64_t parent;
    std::vector<int32_t> tokens;
    int32_t block;
    std::list<uint64_t>::iterator lru;  // position in lru_ (front: most recent)
  };
  // The entry for the chunk after `parent`, or null.
  const Entry* Find(uint64_t parent, std::span<const int32_t> tokens, uint64_t* key) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  KvBlockStore* const pool_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<uint64_t> lru_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hr

#endif  // HEADROOM_SERVER_KVCACHE_PREFIX_CACHE_H_
