#include "server/engine/sampler.h"

#include <cmath>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace hr {
namespace {

std::vector<float> Logits() { return {1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f}; }

TEST(SamplerTest, GreedyPicksArgmax) {
  Sampler s({});
  auto l = Logits();
  EXPECT_EQ(s.Sample(l, {}), 1);
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDiffers) {
  SamplingParams p;
  p.temperature = 1.5f;
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) {
      auto l = Logits();
      out.push_back(s.Sample(l, {}));
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(SamplerTest, FrequenciesFollowSoftmaxWithTemperature) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.seed = 9;
  Sampler s(p);
  const int n = 40000;
  std::map<int, int> count;
  for (int i = 0; i < n; ++i) {
    auto l = Logits();
    ++count[s.Sample(l, {})];
  }
  auto l = Logits();
  double z = 0;
  for (float x : l) z += std::exp(x / 0.7);
  for (int t = 0; t < 6; ++t) {
    const double p_t = std::exp(l[t] / 0.7) / z;
    const double sd = std::sqrt(p_t * (1 - p_t) / n);
    EXPECT_NEAR(count[t] / double(n), p_t, 5 * sd + 1e-4) << "token " << t;
  }
}

TEST(SamplerTest, TopKOneAndTinyTopPAreGreedy) {
  for (int variant = 0; variant < 3; ++variant) {
    SamplingParams p;
    p.temperature = 5.0f;
    p.seed = 3;
    if (variant == 0) p.top_k = 1;
    if (variant == 1) p.top_p = 0.01f;
    if (variant == 2) p.min_p = 0.99f;
    Sampler s(p);
    for (int i = 0; i < 50; ++i) {
      auto l = Logits();
      EXPECT_EQ(s.Sample(l, {}), 1) << "variant " << variant;
    }
  }
}

TEST(SamplerTest, TopKRestrictsSupport) {
  SamplingParams p;
  p.temperature = 10.0f;
  p.top_k = 3;
  p.seed = 5;
  Sampler s(p);
  std::map<int, int> count;
  for (int i = 0; i < 3000; ++i) {
    auto l = Logits();
    ++count[s.Sample(l, {})];
  }
  EXPECT_EQ(count.size(), 3u);
  EXPECT_GT(count[1], 0);
  EXPECT_GT(count[2], 0);
  EXPECT_GT(count[5], 0);
}

TEST(SamplerTest, TopPKeepsSmallestNucleus) {
  // Probabilities 0.5, 0.3, 0.2: top_p 0.7 keeps {0, 1}.
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.7f;
  p.seed = 11;
  Sampler s(p);
  std::map<int, int> count;
  for (int i = 0; i < 3000; ++i) {
    std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    ++count[s.Sample(l, {})];
  }
  EXPECT_EQ(count.count(2), 0u);
  EXPECT_NEAR(count[0] / 3000.0, 0.5 / 0.8, 0.05);
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.5f;  // keeps tokens with p >= 0.25 (0.5 · 0.5)
  p.seed = 12;
  Sampler s(p);
  std::map<int, int> count;
  for (int i = 0; i < 3000; ++i) {
    std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    ++count[s.Sample(l, {})];
  }
  EXPECT_EQ(count.count(2), 0u);
  EXPECT_GT(count[1], 0);
}

TEST(SamplerTest, RepetitionPenaltyDemotesSeenTokens) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  auto l = Logits();
  const std::vector<int32_t> history = {1, 1, 5};  // 3.0 -> 1.5 (once), 2.9 -> 1.45
  EXPECT_EQ(s.Sample(l, history), 2);
  EXPECT_FLOAT_EQ(l[1], 1.5f);
  EXPECT_FLOAT_EQ(l[5], 1.45f);
  // Negative logits are multiplied.
  std::vector<float> neg = {-1.0f, -1.5f};
  const std::vector<int32_t> h2 = {0};
  EXPECT_EQ(s.Sample(neg, h2), 1);
  EXPECT_FLOAT_EQ(neg[0], -2.0f);
}

TEST(SamplerTest, ValidationNamesTheField) {
  auto check = [](SamplingParams p, const char* field) {
    absl::Status st = ValidateSamplingParams(p);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(st.message().find(field), absl::string_view::npos) << st.message();
  };
  SamplingParams p;
  p.temperature = -0.1f;
  check(p, "temperature");
  p = {};
  p.top_p = 0.0f;
  check(p, "top_p");
  p = {};
  p.top_p = 1.5f;
  check(p, "top_p");
  p = {};
  p.top_k = -1;
  check(p, "top_k");
  p = {};
  p.min_p = 1.0f;
  check(p, "min_p");
  p = {};
  p.repetition_penalty = 0.0f;
  check(p, "repetition_penalty");
  p = {};
  p.temperature = NAN;
  check(p, "temperature");
  EXPECT_TRUE(ValidateSamplingParams({}).ok());
}

}  // namespace
}  // namespace hr
