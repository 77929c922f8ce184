#include "server/kvcache/prefix_cache.h"

#include <algorithm>

#include "server/common/splitmix64.h"

namespace hr {

PrefixCache::PrefixCache(KvBlockStore* pool) : pool_(pool) {}

PrefixCache::~PrefixCache() {
  absl::MutexLock lock(&mu_);
  for (auto& [key, entry] : entries_) pool_->Release(entry.block);
}

uint64_t PrefixCache::ChunkKey(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = SplitMix64::Mix(parent ^ 0x9e3779b97f4a7c15ULL);
  for (int32_t t : tokens) h = SplitMix64::Mix(h ^ static_cast<uint32_t>(t));
  return SplitMix64::Mix(h ^ tokens.size());
}

const PrefixCache::Entry* PrefixCache::Find(uint64_t parent, std::span<const int32_t> tokens,
                                            uint64_t* key) const {
  *key = ChunkKey(parent, tokens);
  auto it = entries_.find(*key);
  if (it == entries_.end()) return nullptr;
  const Entry& e = it->second;
  if (e.parent != parent || !std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(),
                                        tokens.end())) {
    return nullptr;  // a hash collision: treat as a miss
  }
  return &e;
}

std::vector<int32_t> PrefixCache::Lookup(uint64_t namespace_key, std::span<const int32_t> tokens,
                                         int32_t chunk_size, int64_t max_chunks) {
  absl::MutexLock lock(&mu_);
  std::vector<int32_t> blocks;
  uint64_t parent = namespace_key;
  for (int64_t c = 0; c < max_chunks && (c + 1) * chunk_size <= static_cast<int64_t>(tokens.size());
       ++c) {
    uint64_t key;
    const Entry* e = Find(parent, tokens.subspan(c * chunk_size, chunk_size), &key);
    if (e == nullptr) break;
    Entry& entry = entries_.find(key)->second;
    lru_.splice(lru_.begin(), lru_, entry.lru);
    blocks.push_back(entry.block);
    parent = key;
  }
  return blocks;
}

int64_t PrefixCache::MatchedTokens(uint64_t namespace_key, std::span<const int32_t> tokens,
                                   int32_t chunk_size, int64_t max_chunks) const {
  absl::ReaderMutexLock lock(&mu_);
  int64_t c = 0;
  uint64_t parent = namespace_key;
  for (; c < max_chunks && (c + 1) * chunk_size <= static_cast<int64_t>(tokens.size()); ++c) {
    uint64_t key;
    if (Find(parent, tokens.subspan(c * chunk_size, chunk_size), &key) == nullptr) break;
    parent = key;
  }
  return c * chunk_size;
}

uint64_t PrefixCache::Insert(uint64_t parent, std::span<const int32_t> chunk_tokens,
                             int32_t block) {
  absl::MutexLock lock(&mu_);
  uint64_t key;
  if (Find(parent, chunk_tokens, &key) != nullptr) return key;
  if (entries_.contains(key)) return key;  // collision with another chunk: keep the old one
  pool_->Retain(block);
  lru_.push_front(key);
  entries_.emplace(key, Entry{parent, std::vector<int32_t>(chunk_tokens.begin(), chunk_tokens.end()),
                              block, lru_.begin()});
  return key;
}

bool PrefixCache::EvictUntil(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  auto room = [&] { return pool_->budget_bytes() - pool_->live_bytes() >= bytes; };
  // Oldest first; a block still used by a sequence stays (evicting it frees nothing).
  for (auto it = lru_.end(); !room() && it != lru_.begin();) {
    --it;
    auto entry = entries_.find(*it);
    if (pool_->ref_count(entry->second.block) != 1) continue;
    pool_->Release(entry->second.block);
    entries_.erase(entry);
    it = lru_.erase(it);
  }
  return room();
}

int64_t PrefixCache::evictable_bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  int64_t bytes = 0;
  for (const auto& [key, entry] : entries_) {
    if (pool_->ref_count(entry.block) == 1) bytes += pool_->BlockBytes(pool_->chunk_size(entry.block));
  }
  return bytes;
}

int64_t PrefixCache::blocks() const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<int64_t>(entries_.size());
}

}  // namespace hr
