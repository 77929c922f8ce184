// BlockPool storage: large blocks (huge-page candidates) and small ones keep
// every written key and value, and large blocks start on 2 MB boundaries.
#include "server/kvcache/block_pool.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace hr {
namespace {

// Writes distinct keys and values into every token of one block and reads
// them back through Keys / Values, per layer and KV head.
void ExpectRoundTrip(BlockPool& pool, int32_t block, int32_t chunk) {
  const KvGeometry& g = pool.geometry();
  const int64_t width = g.n_kv_heads * g.head_dim;
  std::vector<float> k(width), v(width);
  auto value = [&](int64_t layer, int64_t u, int64_t i, bool is_v) {
    return static_cast<float>(((layer * 131 + u) * 17 + i) % 1009) * (is_v ? -0.5f : 0.25f);
  };
  for (int64_t layer = 0; layer < g.n_layers; ++layer) {
    for (int64_t u = 0; u < chunk; ++u) {
      for (int64_t i = 0; i < width; ++i) k[i] = value(layer, u, i, false), v[i] = value(layer, u, i, true);
      pool.Write(block, layer, u, k.data(), v.data());
    }
  }
  std::vector<float> scratch(chunk * g.head_dim);
  for (int64_t layer = 0; layer < g.n_layers; ++layer) {
    for (int64_t h = 0; h < g.n_kv_heads; ++h) {
      const float* keys = pool.Keys(block, layer, h, chunk, scratch.data());
      for (int64_t u = 0; u < chunk; ++u) {
        for (int64_t j = 0; j < g.head_dim; ++j) {
          ASSERT_EQ(keys[u * g.head_dim + j], value(layer, u, h * g.head_dim + j, false))
              << "layer " << layer << " head " << h << " token " << u;
        }
      }
      const float* values = pool.Values(block, layer, h, chunk, scratch.data());
      for (int64_t u = 0; u < chunk; ++u) {
        for (int64_t j = 0; j < g.head_dim; ++j) {
          ASSERT_EQ(values[u * g.head_dim + j], value(layer, u, h * g.head_dim + j, true))
              << "layer " << layer << " head " << h << " token " << u;
        }
      }
    }
  }
}

TEST(BlockPoolTest, LargeBlocksAreHugePageAlignedAndSmallOnesPlain) {
  // 4 layers x 512 tokens x 8 KV heads x 64 x (K, V) x 4 bytes = 8 MB a block.
  BlockPool big(KvGeometry{4, 8, 8, 64}, KvDType::kF32, int64_t{1} << 30);
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<int32_t> a = big.Allocate(512);
    absl::StatusOr<int32_t> b = big.Allocate(512);
    ASSERT_TRUE(a.ok() && b.ok());
    for (int32_t block : {*a, *b}) {
      const float* first = big.Keys(block, 0, 0, 512, nullptr);  // F32: the storage itself
      EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (uintptr_t{2} << 20), 0u);
      ExpectRoundTrip(big, block, 512);
    }
    big.Release(*a);
    big.Release(*b);
  }
  // 2 layers x 8 tokens x 1 head x 4 x 2 x 4 bytes = 512 bytes a block.
  BlockPool small(KvGeometry{2, 2, 1, 4}, KvDType::kF16, 1 << 20);
  absl::StatusOr<int32_t> s = small.Allocate(8);
  ASSERT_TRUE(s.ok());
  ExpectRoundTrip(small, *s, 8);
  small.Release(*s);
}

}  // namespace
}  // namespace hr
