// SelectChunks (the one-pass top-k) against a plain reference: sort every
// candidate by (score descending, index ascending) and keep the first k-3,
// on fresh random scores with many ties, NaNs and infinities, for every
// policy and for slot counts from the minimum (3) to more than the chunks.
#include "server/longctx/chunk_selection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace hr {
namespace {

std::vector<int32_t> ReferenceLongHeads(int64_t k, int64_t c, const std::vector<float>& scores) {
  if (c < k) {
    std::vector<int32_t> all;
    for (int32_t j = 0; j <= c; ++j) all.push_back(j);
    return all;
  }
  std::vector<int32_t> cand;
  for (int32_t j = 1; j <= c - 2; ++j) cand.push_back(j);
  const auto key = [&](int32_t j) { return std::isnan(scores[j]) ? -INFINITY : scores[j]; };
  std::sort(cand.begin(), cand.end(), [&](int32_t a, int32_t b) {
    return key(a) != key(b) ? key(a) > key(b) : a < b;
  });
  cand.resize(k - 3);
  std::sort(cand.begin(), cand.end());
  std::vector<int32_t> list = {0};
  list.insert(list.end(), cand.begin(), cand.end());
  list.push_back(static_cast<int32_t>(c - 1));
  list.push_back(static_cast<int32_t>(c));
  return list;
}

TEST(ChunkSelectionTest, LongHeadsTopKEqualsSortingEveryCandidate) {
  std::mt19937 rng(5);
  int cases = 0;
  for (int k : {3, 4, 8, 20, 64}) {
    for (int c : {0, 2, 3, 7, 8, 9, 17, 40, 100, 257, 1000}) {
      for (int trial = 0; trial < 6; ++trial) {
        std::vector<float> scores(c + 1, std::numeric_limits<float>::quiet_NaN());
        for (int j = 1; j <= c - 2; ++j) {
          const int kind = static_cast<int>(rng() % 20);
          if (trial % 3 == 0) {
            scores[j] = static_cast<float>(rng() % 4);  // mostly ties
          } else if (kind == 0) {
            scores[j] = std::numeric_limits<float>::quiet_NaN();
          } else if (kind == 1) {
            scores[j] = -INFINITY;
          } else if (kind == 2) {
            scores[j] = trial % 2 == 0 ? INFINITY : 1e30f;
          } else {
            scores[j] = std::normal_distribution<float>(0.0f, 1.0f)(rng);
          }
        }
        if (trial == 5) {  // increasing scores: every candidate displaces the worst
          for (int j = 1; j <= c - 2; ++j) scores[j] = static_cast<float>(j);
        }
        LongContextParams p;
        p.policy = AttentionPolicy::kLongHeads;
        p.chunk_size = 4;
        p.atten_length = 4 * k;
        std::vector<int32_t> got;
        SelectChunks(p, c, scores.data(), &got);
        EXPECT_EQ(got, ReferenceLongHeads(k, c, scores)) << "k " << k << " c " << c << " trial " << trial;
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 5 * 11 * 6);
}

TEST(ChunkSelectionTest, FullAndWindowLists) {
  LongContextParams p;
  p.chunk_size = 4;
  p.atten_length = 16;  // 4 slots
  std::vector<int32_t> got;
  p.policy = AttentionPolicy::kFull;
  SelectChunks(p, 5, nullptr, &got);
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  p.policy = AttentionPolicy::kWindow;
  SelectChunks(p, 2, nullptr, &got);
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2}));
  SelectChunks(p, 9, nullptr, &got);
  EXPECT_EQ(got, (std::vector<int32_t>{0, 7, 8, 9}));
}

}  // namespace
}  // namespace hr
