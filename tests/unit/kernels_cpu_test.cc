// CPU kernels against plain references on fresh random inputs
// (element-wise atol + rtol·|ref|, failing on any mismatch).
#include <algorithm>
#include <cmath>
#include <string>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/argmax.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_small_m.h"
#include "kernels/cpu/gemm_small_m_variants.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/slot_attention.h"

namespace hr::cpu {
namespace {

std::vector<float> Random(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Counts elements outside atol + rtol·|ref| and reports the first few.
void ExpectClose(const std::vector<float>& got, const std::vector<double>& ref, double atol,
                 double rtol) {
  ASSERT_EQ(got.size(), ref.size());
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::abs(got[i] - ref[i]) > atol + rtol * std::abs(ref[i])) {
      if (++bad <= 5) ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << ref[i];
    }
  }
  EXPECT_EQ(bad, 0) << "of " << ref.size() << " elements";
}

TEST(GemmTest, MatchesReferenceForManyShapes) {
  std::mt19937 rng(1);
  for (auto [m, k, n] : {std::tuple{1, 64, 96}, {7, 33, 5}, {64, 128, 257}, {3, 1, 2}}) {
    auto x = Random(m * k, rng), w = Random(n * k, rng);
    std::vector<float> y(m * n), ref_f(m * n);
    MatMulWt(x.data(), m, k, w.data(), n, y.data());
    std::vector<double> ref(m * n);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double acc = 0;
        for (int p = 0; p < k; ++p) acc += double(x[i * k + p]) * w[j * k + p];
        ref[i * n + j] = acc;
      }
    ExpectClose(y, ref, 1e-4, 1e-4);
    MatMulWtReference(x.data(), m, k, w.data(), n, ref_f.data());
    ExpectClose(ref_f, ref, 1e-5, 1e-5);
  }
}

TEST(GemmTest, SmallMVariantsMatchReference) {
  std::mt19937 rng(11);
  __builtin_cpu_init();
  struct Variant {
    const char* name;
    bool supported;
    void (*fn)(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t);
  };
  const Variant variants[] = {
      {"avx512", bool(__builtin_cpu_supports("avx512f")), avx512::MatMulWtSmallMImpl},
      {"avx2", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), avx2::MatMulWtSmallMImpl},
      {"generic", true, generic::MatMulWtSmallMImpl},
  };
  for (const Variant& v : variants) {
    if (!v.supported) continue;
    for (int m = 1; m <= kSmallMMax; m += 3) {
      for (auto [k, n] : {std::pair{768, 1027}, {5, 3}, {64, 4096}}) {
        auto x = Random(m * k, rng), w = Random(n * k, rng);
        // Rows of y 3 floats wider than n: the gaps must stay untouched.
        const int64_t ldy = n + 3;
        std::vector<float> wide(m * ldy, NAN), y;
        v.fn(x.data(), m, k, w.data(), n, wide.data(), ldy);
        for (int i = 0; i < m; ++i) {
          y.insert(y.end(), wide.begin() + i * ldy, wide.begin() + i * ldy + n);
          for (int64_t j = n; j < ldy; ++j) EXPECT_TRUE(std::isnan(wide[i * ldy + j]));
        }
        std::vector<double> ref(m * n);
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double acc = 0;
            for (int p = 0; p < k; ++p) acc += double(x[i * k + p]) * w[j * k + p];
            ref[i * n + j] = acc;
          }
        SCOPED_TRACE(::testing::Message() << v.name << " m=" << m << " k=" << k << " n=" << n);
        ExpectClose(y, ref, 1e-4, 1e-4);
      }
    }
  }
  EXPECT_NE(std::string(SmallMVariant()), "");
}

TEST(NormTest, RmsNormMatchesReference) {
  std::mt19937 rng(2);
  const int rows = 9, dim = 77;
  auto x = Random(rows * dim, rng, 3.0f), w = Random(dim, rng);
  std::vector<float> y(rows * dim);
  RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, y.data());
  std::vector<double> ref(rows * dim);
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int i = 0; i < dim; ++i) ref[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
  ExpectClose(y, ref, 1e-5, 1e-5);
}

TEST(ActivationTest, SiluMulAndSoftmax) {
  std::mt19937 rng(3);
  auto g = Random(1000, rng, 4.0f), u = Random(1000, rng);
  std::vector<double> ref(1000);
  for (int i = 0; i < 1000; ++i) ref[i] = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
  SiluMul(g.data(), u.data(), 1000);
  ExpectClose(g, ref, 1e-5, 1e-5);

  auto s = Random(50, rng, 10.0f);
  double mx = -1e30, sum = 0;
  for (float v : s) mx = std::max<double>(mx, v);
  std::vector<double> p(50);
  for (int i = 0; i < 50; ++i) sum += p[i] = std::exp(s[i] - mx);
  for (double& v : p) v /= sum;
  Softmax(s.data(), 50);
  ExpectClose(s, p, 1e-6, 1e-5);
}

// Textbook RoPE: channel pair (a, b) as the complex number a + ib times e^{iθ}.
std::vector<double> RopeReference(const std::vector<float>& x, int d, double pos, double theta,
                                  double scale, RopeStyle style) {
  std::vector<double> y(x.begin(), x.end());
  for (int i = 0; i < d / 2; ++i) {
    const double angle = pos / scale * std::pow(theta, -2.0 * i / d);
    const int a = style == RopeStyle::kAdjacent ? 2 * i : i;
    const int b = style == RopeStyle::kAdjacent ? 2 * i + 1 : i + d / 2;
    y[a] = x[a] * std::cos(angle) - x[b] * std::sin(angle);
    y[b] = x[a] * std::sin(angle) + x[b] * std::cos(angle);
  }
  return y;
}

TEST(ArgMaxTest, IsStdMaxElementWithTiesNanInfinitiesAndSignedZeros) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> level(-3, 3), special(0, 60);
  const float kSpecial[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
  for (int64_t n : {1, 2, 15, 16, 17, 31, 33, 100, 32000, 32003}) {
    for (int trial = 0; trial < 40; ++trial) {
      // Coarse values (many ties), a few specials; some trials all one value
      // or NaN first.
      std::vector<float> x(n);
      for (float& v : x) {
        const int sp = special(rng);
        v = sp < 5 ? kSpecial[sp] : 0.5f * level(rng);
      }
      if (trial == 0) std::fill(x.begin(), x.end(), -0.0f);
      if (trial == 1) x[0] = NAN;
      if (trial == 2) std::fill(x.begin(), x.end(), NAN);
      if (trial == 3) std::fill(x.begin(), x.end(), -INFINITY);
      if (trial == 4 && n > 1) {  // NaN first, then a clear maximum late
        std::fill(x.begin(), x.end(), 1.0f);
        x[0] = NAN;
        x[n - 1] = 2.0f;
      }
      const int64_t want = std::max_element(x.begin(), x.end()) - x.begin();
      ASSERT_EQ(cpu::ArgMax(x.data(), n), want) << "n " << n << " trial " << trial;
    }
  }
  EXPECT_EQ(cpu::ArgMax(nullptr, 0), 0);
}

TEST(RopeTest, MatchesTextbookForBothStylesAndScaling) {
  std::mt19937 rng(4);
  for (RopeStyle style : {RopeStyle::kAdjacent, RopeStyle::kNeoX}) {
    for (double scale : {1.0, 4.0}) {
      for (double pos : {0.0, 1.0, 37.0, 5000.0, -12.0}) {
        const int d = 16;
        auto x = Random(d, rng);
        auto ref = RopeReference(x, d, pos, 500000.0, scale, style);
        Rope rope(d, 500000.0f, static_cast<float>(scale), style);
        rope.Apply(x.data(), 1, pos);
        ExpectClose(x, ref, 1e-5, 1e-5);
      }
    }
  }
}

TEST(RopeTest, RelativePropertyHolds) {
  // (R(m) q)·(R(n) k) == (R(m - n) q)·k : the identity slot attention relies on.
  std::mt19937 rng(5);
  const int d = 32;
  for (RopeStyle style : {RopeStyle::kAdjacent, RopeStyle::kNeoX}) {
    Rope rope(d, 10000.0f, 1.0f, style);
    auto q = Random(d, rng), k = Random(d, rng);
    auto qm = q, kn = k, qr = q;
    rope.Apply(qm.data(), 1, 900.0);
    rope.Apply(kn.data(), 1, 700.0);
    rope.Apply(qr.data(), 1, 200.0);
    double a = 0, b = 0;
    for (int i = 0; i < d; ++i) {
      a += double(qm[i]) * kn[i];
      b += double(qr[i]) * k[i];
    }
    EXPECT_NEAR(a, b, 1e-4 * (1 + std::abs(a)));
  }
}

TEST(AttentionTest, CausalGqaMatchesReference) {
  std::mt19937 rng(6);
  const int n_heads = 6, n_kv = 2, d = 8, past = 5, nq = 7, total = past + nq;
  auto q = Random(nq * n_heads * d, rng), k = Random(total * n_kv * d, rng),
       v = Random(total * n_kv * d, rng);
  std::vector<float> out(nq * n_heads * d);
  CausalAttentionParams p{q.data(), k.data(), v.data(), out.data(), nq, past, n_heads, n_kv, d,
                          1.0f / std::sqrt(float(d))};
  ASSERT_EQ(CausalAttention(p), KernelStatus::kOk);
  std::vector<double> ref(out.size());
  for (int i = 0; i < nq; ++i)
    for (int h = 0; h < n_heads; ++h) {
      const int kvh = h / (n_heads / n_kv);
      std::vector<double> s(past + i + 1);
      double mx = -1e30;
      for (int t = 0; t <= past + i; ++t) {
        double acc = 0;
        for (int c = 0; c < d; ++c) acc += double(q[(i * n_heads + h) * d + c]) * k[(t * n_kv + kvh) * d + c];
        s[t] = acc / std::sqrt(double(d));
        mx = std::max(mx, s[t]);
      }
      double sum = 0;
      for (double& x : s) sum += x = std::exp(x - mx);
      for (int c = 0; c < d; ++c) {
        double acc = 0;
        for (int t = 0; t <= past + i; ++t) acc += s[t] / sum * v[(t * n_kv + kvh) * d + c];
        ref[(i * n_heads + h) * d + c] = acc;
      }
    }
  ExpectClose(out, ref, 1e-5, 1e-4);
}

TEST(FastExpTest, RelativeErrorBelow3e7) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.001) {
    const double want = std::exp(x);
    worst = std::max(worst, std::abs(FastExp(static_cast<float>(x)) - std::exp(double(float(x)))) / want);
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_GT(FastExp(-INFINITY), 0.0f);  // clamped, harmless in a softmax
  EXPECT_LT(FastExp(-INFINITY), 1e-37f);
}

// Slot attention with local-RoPE keys equals textbook attention where the
// raw keys are rotated at their slot positions and the query at its own.
TEST(SlotAttentionTest, MatchesRotatingKeysAtSlotPositions) {
  std::mt19937 rng(8);
  const int d = 16, w = 8;
  for (RopeStyle style : {RopeStyle::kAdjacent, RopeStyle::kNeoX}) {
    Rope rope(d, 10000.0f, 1.0f, style);
    RopeStepTable steps(rope, w);
    steps.Reserve(8);
    // Four chunks at slots 0..3; the query is in the last one at offset 5.
    const int n_chunks = 4, u_q = 5;
    std::vector<std::vector<float>> raw_k(n_chunks), local_k(n_chunks), vals(n_chunks);
    std::vector<SlotChunk> chunks;
    for (int s = 0; s < n_chunks; ++s) {
      const int n_keys = s == n_chunks - 1 ? u_q + 1 : w;
      raw_k[s] = Random(n_keys * d, rng);
      vals[s] = Random(n_keys * d, rng);
      local_k[s] = raw_k[s];
      for (int u = 0; u < n_keys; ++u) rope.Apply(local_k[s].data() + u * d, 1, u);
      chunks.push_back({local_k[s].data(), vals[s].data(), n_keys, n_chunks - 1 - s});
    }
    auto q_raw = Random(d, rng, 2.0f);
    auto q_local = q_raw;
    rope.Apply(q_local.data(), 1, u_q);
    std::vector<float> out(d), scratch(w + d);
    SlotAttentionParams p{q_local.data(), chunks.data(), n_chunks, d, 0.25f, &steps, out.data(), scratch.data()};
    SlotAttention(p);

    const double m = (n_chunks - 1) * w + u_q;
    std::vector<float> q_m = q_raw;
    rope.Apply(q_m.data(), 1, m);
    std::vector<double> logits, ref(d, 0.0);
    std::vector<const float*> vrows;
    for (int s = 0; s < n_chunks; ++s) {
      for (int u = 0; u < chunks[s].n_keys; ++u) {
        std::vector<float> k(raw_k[s].begin() + u * d, raw_k[s].begin() + (u + 1) * d);
        rope.Apply(k.data(), 1, s * w + u);
        double dot = 0;
        for (int c = 0; c < d; ++c) dot += double(q_m[c]) * k[c];
        logits.push_back(dot * 0.25);
        vrows.push_back(vals[s].data() + u * d);
      }
    }
    double mx = -1e30, z = 0;
    for (double l : logits) mx = std::max(mx, l);
    for (double l : logits) z += std::exp(l - mx);
    for (size_t t = 0; t < logits.size(); ++t)
      for (int c = 0; c < d; ++c) ref[c] += std::exp(logits[t] - mx) / z * vrows[t][c];
    ExpectClose(out, ref, 1e-5, 1e-4);
  }
}

// The block kernel (queries grouped by the chunks they read, each query
// rotated by its own slot distance, design.md §3) equals the per-query
// kernel on fresh random inputs: rows with different chunk lists (so one
// chunk sits at different slot distances for different rows), chunks
// visited in a shuffled order, partial (causal) chunks with per-row key
// counts, chunks read by more than kSlotBlockRows rows, a row that reads
// nothing, padded row strides.
TEST(SlotAttentionTest, BlockOfQueriesEqualsPerQueryAttention) {
  std::mt19937 rng(11);
  const int d = 32, w = 16, n_chunks = 12, n_rows = 37;
  for (RopeStyle style : {RopeStyle::kAdjacent, RopeStyle::kNeoX}) {
    Rope rope(d, 10000.0f, 1.0f, style);
    RopeStepTable steps(rope, w);
    steps.Reserve(n_chunks);
    std::vector<std::vector<float>> keys(n_chunks), vals(n_chunks);
    for (int j = 0; j < n_chunks; ++j) {
      keys[j] = Random(w * d, rng);
      vals[j] = Random(w * d, rng);
    }
    const int q_stride = d + 3, out_stride = d + 5;
    auto q = Random(n_rows * q_stride, rng, 2.0f);
    // Row i reads a random sorted subset of chunks at consecutive slots; its
    // last chunk is partial with a per-row number of keys.
    struct Read { int chunk, steps, n_keys, row; };
    std::vector<Read> reads;
    std::vector<std::vector<float>> want(n_rows, std::vector<float>(d, 0.0f));
    std::vector<float> scratch(w + d);
    for (int i = 0; i < n_rows - 1; ++i) {  // the last row reads nothing
      std::vector<int> list;
      for (int j = 0; j < n_chunks; ++j) {
        if (rng() % 2 == 0) list.push_back(j);
      }
      if (list.empty()) list.push_back(static_cast<int>(rng() % n_chunks));
      std::vector<SlotChunk> chunks;
      const int own = static_cast<int>(list.size()) - 1;
      for (int s = 0; s <= own; ++s) {
        const int nk = s == own ? 1 + static_cast<int>(rng() % w) : w;
        chunks.push_back({keys[list[s]].data(), vals[list[s]].data(), nk, own - s});
        reads.push_back({list[s], own - s, nk, i});
      }
      SlotAttentionParams p{q.data() + i * q_stride, chunks.data(), static_cast<int64_t>(chunks.size()),
                            d, 0.2f, &steps, want[i].data(), scratch.data()};
      SlotAttention(p);
    }
    std::shuffle(reads.begin(), reads.end(), rng);
    std::stable_sort(reads.begin(), reads.end(), [](const Read& a, const Read& b) { return a.chunk < b.chunk; });
    std::vector<float> out(n_rows * out_stride, 7.0f), row_max(n_rows), row_sum(n_rows);
    std::vector<float> block_scratch(SlotChunkScratch(w, d));
    SlotQueryBlock b{q.data(), q_stride, d, 0.2f, &steps, out.data(), out_stride, row_max.data(), row_sum.data()};
    BeginSlotQueries(b, n_rows);
    int max_readers = 0;
    for (size_t p0 = 0; p0 < reads.size();) {
      size_t p1 = p0;
      std::vector<int32_t> rows, row_steps;
      std::vector<int64_t> counts;
      for (; p1 < reads.size() && reads[p1].chunk == reads[p0].chunk; ++p1) {
        rows.push_back(reads[p1].row);
        row_steps.push_back(reads[p1].steps);
        counts.push_back(reads[p1].n_keys);
      }
      max_readers = std::max(max_readers, static_cast<int>(rows.size()));
      const int j = reads[p0].chunk;
      AttendSlotChunk(b, {keys[j].data(), vals[j].data(), w},
                      {rows.data(), row_steps.data(), counts.data(), static_cast<int64_t>(rows.size())},
                      block_scratch.data());
      p0 = p1;
    }
    FinishSlotQueries(b, n_rows);
    EXPECT_GT(max_readers, kSlotBlockRows);
    for (int i = 0; i < n_rows; ++i) {
      std::vector<float> got(out.begin() + i * out_stride, out.begin() + i * out_stride + d);
      ExpectClose(got, std::vector<double>(want[i].begin(), want[i].end()), 1e-5, 1e-4);
    }
  }
}

TEST(AttentionTest, RejectsBadShapes) {
  CausalAttentionParams p{};
  p.n_heads = 6;
  p.n_kv_heads = 4;
  p.head_dim = 8;
  EXPECT_EQ(CausalAttention(p), KernelStatus::kInvalidShape);
}

}  // namespace
}  // namespace hr::cpu
