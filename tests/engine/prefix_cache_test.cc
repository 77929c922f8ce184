// PrefixCache: chained chunk keys, longest-prefix lookup, reference counts
// on the pool, LRU eviction of blocks only the cache holds.
#include "server/kvcache/prefix_cache.h"

#include <vector>

#include "gtest/gtest.h"
#include "server/kvcache/block_pool.h"

namespace hr {
namespace {

constexpr int32_t kChunk = 4;

class PrefixCacheTest : public ::testing::Test {
 protected:
  PrefixCacheTest() : pool_(KvGeometry{1, 2, 1, 4}, KvDType::kF32, 8 * BlockBytes()) {}
  int64_t BlockBytes() const {
    BlockPool probe(KvGeometry{1, 2, 1, 4}, KvDType::kF32, 0);
    return probe.BlockBytes(kChunk);
  }
  // Caches the complete chunks of `tokens` as a sequence would, then drops
  // the sequence's own references (only the cache holds them afterwards).
  std::vector<int32_t> CacheDocument(PrefixCache& cache, uint64_t ns, const std::vector<int32_t>& tokens) {
    std::vector<int32_t> blocks;
    uint64_t parent = ns;
    for (size_t c = 0; (c + 1) * kChunk <= tokens.size(); ++c) {
      auto b = pool_.Allocate(kChunk);
      EXPECT_TRUE(b.ok());
      blocks.push_back(*b);
      parent = cache.Insert(parent, {tokens.data() + c * kChunk, kChunk}, *b);
    }
    for (int32_t b : blocks) pool_.Release(b);
    return blocks;
  }
  BlockPool pool_;
};

TEST_F(PrefixCacheTest, FindsTheLongestCachedPrefixOnly) {
  PrefixCache cache(&pool_);
  const std::vector<int32_t> doc = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  const std::vector<int32_t> blocks = CacheDocument(cache, 7, doc);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(cache.Lookup(7, doc, kChunk, 10), blocks);
  EXPECT_EQ(cache.MatchedTokens(7, doc, kChunk, 10), 12);
  EXPECT_EQ(cache.MatchedTokens(7, doc, kChunk, 2), 8);
  // Another namespace (other long-context parameters) shares nothing.
  EXPECT_TRUE(cache.Lookup(8, doc, kChunk, 10).empty());
  // A change in the second chunk keeps only the first.
  std::vector<int32_t> edited = doc;
  edited[5] = 99;
  EXPECT_EQ(cache.Lookup(7, edited, kChunk, 10), std::vector<int32_t>{blocks[0]});
  // The same chunk after a different first chunk is a different chunk.
  std::vector<int32_t> shifted = {0, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_TRUE(cache.Lookup(7, shifted, kChunk, 10).empty());
}

TEST_F(PrefixCacheTest, HoldsOneReferenceAndEvictsLeastRecentlyUsedUnshared) {
  {
    PrefixCache cache(&pool_);
    const std::vector<int32_t> a = CacheDocument(cache, 1, {1, 2, 3, 4, 5, 6, 7, 8});
    const std::vector<int32_t> b = CacheDocument(cache, 1, {9, 9, 9, 9, 8, 8, 8, 8});
    EXPECT_EQ(cache.blocks(), 4);
    for (int32_t id : a) EXPECT_EQ(pool_.ref_count(id), 1);
    EXPECT_EQ(cache.evictable_bytes(), 4 * BlockBytes());
    // A sequence adopts document a's first block: not evictable while shared.
    pool_.Retain(a[0]);
    EXPECT_EQ(cache.evictable_bytes(), 3 * BlockBytes());
    // Touch a, so b's blocks are the least recently used.
    cache.Lookup(1, std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}, kChunk, 2);
    ASSERT_TRUE(cache.EvictUntil(6 * BlockBytes()));  // 8 in budget, 4 live: evict 2
    EXPECT_EQ(cache.blocks(), 2);
    EXPECT_EQ(cache.MatchedTokens(1, std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}, kChunk, 2), 8);
    // Everything evictable gone still leaves the shared block.
    EXPECT_FALSE(cache.EvictUntil(8 * BlockBytes()));
    EXPECT_EQ(cache.blocks(), 1);
    pool_.Release(a[0]);
  }
  EXPECT_EQ(pool_.live_bytes(), 0);  // the cache's destructor released the rest
}

}  // namespace
}  // namespace hr
