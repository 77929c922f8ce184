#include "bench/machine_limits.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace hr::bench {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double MeasureReadBandwidth(size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buf(n);
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 7);
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = NowSeconds();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    {
      // Each thread sums its contiguous share into 64 independent lanes, so
      // the loop is limited by memory, not by the latency of one add chain.
      const size_t nt = omp_get_num_threads(), id = omp_get_thread_num();
      const size_t lo = n * id / nt / 64 * 64;
      const size_t hi = id + 1 == nt ? n / 64 * 64 : n * (id + 1) / nt / 64 * 64;
      float lanes[64] = {};
      for (size_t i = lo; i < hi; i += 64) {
#pragma omp simd
        for (int j = 0; j < 64; ++j) lanes[j] += buf[i + j];
      }
      for (float v : lanes) total += v;
    }
    const double dt = NowSeconds() - t0;
    sink = sink + total;
    best = std::max(best, static_cast<double>(n * sizeof(float)) / dt);
  }
  return best;
}

double MeasureGemmFlops(int m, int n, int k, int repeats) {
  std::vector<float> x(static_cast<size_t>(m) * k, 0.5f), w(static_cast<size_t>(n) * k, 0.25f),
      y(static_cast<size_t>(m) * n);
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = NowSeconds();
    cpu::MatMulWt(x.data(), m, k, w.data(), n, y.data());
    best = std::max(best, 2.0 * m * n * k / (NowSeconds() - t0));
  }
  return best;
}

std::string CpuDescription() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " hardware threads";
}

}  // namespace hr::bench
