// CUDA kernels against the CPU reference; skipped when no GPU is visible.
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/cuda_kernels.h"

namespace hr {
namespace {

TEST(CudaKernelsTest, RmsNormMatchesCpu) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible: GPU test skipped";
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  const int rows = 37, dim = 1000;
  std::vector<float> x(rows * dim), w(dim), got(rows * dim), want(rows * dim);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  ASSERT_EQ(cuda::RmsNormHost(x.data(), w.data(), rows, dim, 1e-5f, got.data()), cuda::CudaStatus::kOk);
  cpu::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, want.data());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += std::abs(got[i] - want[i]) > 1e-5 + 1e-4 * std::abs(want[i]);
  EXPECT_EQ(bad, 0);
}

TEST(CudaKernelsTest, ReportsNoDeviceOrValidShapes) {
  float x = 1.0f, w = 1.0f, y = 0.0f;
  const cuda::CudaStatus s = cuda::RmsNormHost(&x, &w, 1, 1, 1e-5f, &y);
  if (cuda::DeviceCount() == 0) {
    EXPECT_EQ(s, cuda::CudaStatus::kNoDevice);
  } else {
    EXPECT_EQ(s, cuda::CudaStatus::kOk);
    EXPECT_NEAR(y, 1.0f, 1e-4);
  }
}

}  // namespace
}  // namespace hr
