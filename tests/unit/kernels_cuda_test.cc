// CUDA kernels against the CPU reference code of this repository
// (kernels/cpu, server/longctx/chunk_summary.cc, chunk_selection.cc), and
// the model's own passes (server/backend_cuda/model_kernels.h) likewise:
// element-wise |got − want| <= atol + rtol·|want| on fresh random inputs,
// failing on any mismatch; chunk lists are compared exactly. Every test
// skips with a message when no GPU is visible (ctest label `gpu`).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/slot_attention.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/span_tiles.h"
#include "server/backend_cuda/model_kernels.h"
#include "server/longctx/chunk_selection.h"
#include "server/longctx/chunk_summary.h"
#include "server/longctx/long_context_params.h"

namespace hr {
namespace {

using cuda::CudaStatus;
using cuda::DType;

#define SKIP_WITHOUT_GPU()                                                            \
  if (cuda::DeviceCount() == 0) {                                                     \
    GTEST_SKIP() << "no CUDA device visible: GPU test skipped (run on a GPU machine)"; \
  }

// ---------------------------------------------------------------- helpers

// Fresh inputs every run: the seed comes from the clock-free random device and
// is printed on failure (SCOPED_TRACE) so a failure can be replayed.
uint64_t FreshSeed() { return (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}(); }

uint16_t F32ToBF16Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even (no NaNs here)
  return static_cast<uint16_t>(bits >> 16);
}
float BF16BitsToF32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint16_t F32ToF16Bits(float f) {
  const _Float16 h = static_cast<_Float16>(f);  // round to nearest even
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
float F16BitsToF32(uint16_t b) {
  _Float16 h;
  std::memcpy(&h, &b, 2);
  return static_cast<float>(h);
}

// Host storage of `n` elements of `dtype`, with the F32 values they hold.
struct TypedHost {
  DType dtype;
  std::vector<uint8_t> bytes;
  void Resize(size_t n) { bytes.assign(n * cuda::DTypeBytes(dtype), 0); }
  size_t size() const { return bytes.size() / cuda::DTypeBytes(dtype); }
  // Stores x rounded to the dtype; returns the value stored.
  float Set(size_t i, float x) {
    switch (dtype) {
      case DType::kF32:
        std::memcpy(&bytes[4 * i], &x, 4);
        return x;
      case DType::kF16: {
        const uint16_t b = F32ToF16Bits(x);
        std::memcpy(&bytes[2 * i], &b, 2);
        return F16BitsToF32(b);
      }
      case DType::kBF16: {
        const uint16_t b = F32ToBF16Bits(x);
        std::memcpy(&bytes[2 * i], &b, 2);
        return BF16BitsToF32(b);
      }
    }
    return 0.0f;
  }
  float Get(size_t i) const {
    if (dtype == DType::kF32) {
      float x;
      std::memcpy(&x, &bytes[4 * i], 4);
      return x;
    }
    uint16_t b;
    std::memcpy(&b, &bytes[2 * i], 2);
    return dtype == DType::kF16 ? F16BitsToF32(b) : BF16BitsToF32(b);
  }
};

// Device memory freed on scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&ptr_, std::max<size_t>(bytes, 16)) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_;
};

template <typename T>
std::unique_ptr<DeviceBuffer> Upload(const std::vector<T>& v) {
  auto b = std::make_unique<DeviceBuffer>(v.size() * sizeof(T));
  EXPECT_NE(b->get(), nullptr);
  EXPECT_EQ(cudaMemcpy(b->get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return b;
}

// A device buffer of `n` T filled with 0xff bytes (NaN for floats, -1 for
// ints): outputs the kernel fails to write show up.
template <typename T>
std::unique_ptr<DeviceBuffer> Poisoned(size_t n) {
  auto b = std::make_unique<DeviceBuffer>(n * sizeof(T));
  EXPECT_EQ(cudaMemset(b->get(), 0xff, n * sizeof(T)), cudaSuccess);
  return b;
}

template <typename T>
std::vector<T> Download(const DeviceBuffer& b, size_t n) {
  std::vector<T> v(n);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(v.data(), b.get(), n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return v;
}

// Counts elements outside atol + rtol·|want| (NaN counts); reports the first few.
int CountMismatches(const float* got, const float* want, size_t n, double atol, double rtol,
                    const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= atol + rtol * std::fabs(want[i]))) {
      if (++bad <= 5) {
        ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " want " << want[i];
      }
    }
  }
  return bad;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double atol,
                 double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_EQ(CountMismatches(got.data(), want.data(), got.size(), atol, rtol, what), 0) << what;
}

std::vector<float> Normal(size_t n, std::mt19937_64& rng, float sd = 1.0f) {
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

const char* DTypeName(DType t) { return t == DType::kF32 ? "f32" : t == DType::kF16 ? "f16" : "bf16"; }
std::string PolicyLabel(AttentionPolicy p) {
  return p == AttentionPolicy::kFull ? "full" : p == AttentionPolicy::kWindow ? "window" : "longheads";
}
const char* StyleName(RopeStyle s) { return s == RopeStyle::kNeoX ? "neox" : "adjacent"; }

// A device block store of `n_blocks` blocks for one layer, built from host
// values (rounded to the dtype); Keys()/Values() give the F32 values stored,
// as BlockPool::Keys/Values would.
struct TestKvStore {
  TestKvStore(int32_t blocks, int32_t w, int32_t kv_heads, int32_t d, DType t)
      : n_blocks(blocks), chunk_size(w), n_kv_heads(kv_heads), head_dim(d), dtype(t) {}
  int32_t n_blocks, chunk_size, n_kv_heads, head_dim;
  DType dtype;
  TypedHost host{DType::kF32, {}};
  std::unique_ptr<DeviceBuffer> device;

  int64_t BlockElems() const { return 2LL * n_kv_heads * chunk_size * head_dim; }
  int64_t HeadOffset(int32_t block, int32_t g, bool values) const {
    return block * BlockElems() + (values ? BlockElems() / 2 : 0) +
           static_cast<int64_t>(g) * chunk_size * head_dim;
  }
  void FillRandom(std::mt19937_64& rng) {
    host.dtype = dtype;
    host.Resize(static_cast<size_t>(n_blocks) * BlockElems());
    std::normal_distribution<float> dist;
    for (size_t i = 0; i < host.size(); ++i) host.Set(i, dist(rng));
    device = Upload(host.bytes);
  }
  // F32 copy of [chunk_size][head_dim] of one (block, kv head).
  std::vector<float> Rows(int32_t block, int32_t g, bool values) const {
    std::vector<float> out(static_cast<size_t>(chunk_size) * head_dim);
    const int64_t off = HeadOffset(block, g, values);
    for (size_t i = 0; i < out.size(); ++i) out[i] = host.Get(off + i);
    return out;
  }
  cuda::PagedKvLayer Layer() const {
    cuda::PagedKvLayer l;
    l.d_base = device != nullptr ? device->get() : nullptr;
    l.block_stride = BlockElems();
    l.value_offset = BlockElems() / 2;
    l.chunk_size = chunk_size;
    l.n_kv_heads = n_kv_heads;
    l.head_dim = head_dim;
    l.dtype = dtype;
    return l;
  }
};

std::vector<int32_t> Permutation(int32_t n, std::mt19937_64& rng) {
  std::vector<int32_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  return p;
}

// ---------------------------------------------------------------- elementwise

TEST(CudaKernelsTest, RmsNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int rows = 37, dim = 1000;
  std::vector<float> x = Normal(rows * dim, rng), w = Normal(dim, rng), got(rows * dim), want(rows * dim);
  ASSERT_EQ(cuda::RmsNormHost(x.data(), w.data(), rows, dim, 1e-5f, got.data()), CudaStatus::kOk);
  cpu::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, want.data());
  ExpectClose(got, want, 1e-5, 1e-4, "rmsnorm");
}

TEST(CudaKernelsTest, ReportsNoDeviceOrValidShapes) {
  float x = 1.0f, w = 1.0f, y = 0.0f;
  const CudaStatus s = cuda::RmsNormHost(&x, &w, 1, 1, 1e-5f, &y);
  if (cuda::DeviceCount() == 0) {
    EXPECT_EQ(s, CudaStatus::kNoDevice);
  } else {
    EXPECT_EQ(s, CudaStatus::kOk);
    EXPECT_NEAR(y, 1.0f, 1e-4);
  }
}

TEST(CudaKernelsTest, ShapeErrorsAreReportedWithoutLaunching) {
  // Shape checks come first, so these hold with or without a GPU.
  cuda::RmsNormParams rn{nullptr, nullptr, nullptr, 0, 8, 1e-5f};
  EXPECT_EQ(cuda::RmsNorm(rn), CudaStatus::kInvalidShape);
  cuda::DecodeAttentionParams dp;
  dp.n_heads = 3;
  dp.kv.n_kv_heads = 2;  // 3 % 2 != 0
  EXPECT_EQ(cuda::DecodeAttention(dp), CudaStatus::kInvalidShape);
  cuda::SelectChunksParams sp;
  sp.slots = 2;  // fewer than 3 slots
  sp.n_heads = 1;
  EXPECT_EQ(cuda::SelectChunks(sp), CudaStatus::kInvalidShape);
  cuda::GemmParams gp;
  gp.ab_dtype = DType::kF32;
  gp.c_dtype = DType::kBF16;
  EXPECT_EQ(cuda::Gemm(gp), CudaStatus::kUnsupported);
  // Attention outputs are F32 or BF16 (the input of a BF16 GEMM), checked first.
  dp.out_dtype = DType::kF16;
  EXPECT_EQ(cuda::DecodeAttention(dp), CudaStatus::kUnsupported);
  cuda::PrefillAttentionParams pp;
  pp.out_dtype = DType::kF16;
  EXPECT_EQ(cuda::PrefillAttention(pp), CudaStatus::kUnsupported);
  // Decode rows of several sequences need the chunk size (their chunks come
  // from their positions) and a block table per row.
  const int32_t position = 40;
  const int32_t* const table = nullptr;
  cuda::SelectChunksParams rows_sel;
  rows_sel.slots = 4;
  rows_sel.c = 3;
  rows_sel.n_queries = 1;
  rows_sel.n_heads = 1;
  rows_sel.rows = {&position, &table};
  EXPECT_EQ(cuda::SelectChunks(rows_sel), CudaStatus::kInvalidShape);  // chunk_size 0
  rows_sel.chunk_size = 16;
  rows_sel.rows.tables = nullptr;
  EXPECT_EQ(cuda::SelectChunks(rows_sel), CudaStatus::kInvalidShape);
  cuda::ChunkScoreParams rows_score;
  rows_score.n_queries = 1;
  rows_score.n_heads = 1;
  rows_score.n_kv_heads = 1;
  rows_score.head_dim = 8;
  rows_score.n_chunks = 8;
  rows_score.rows = {&position, &table};
  EXPECT_EQ(cuda::ScoreChunks(rows_score), CudaStatus::kInvalidShape);  // chunk_size 0
}

TEST(CudaKernelsTest, UnsupportedHeadDimIsAnError) {
  SKIP_WITHOUT_GPU();
  std::unique_ptr<cuda::RopeTables> rope;
  ASSERT_EQ(cuda::RopeTables::Create(96, 10000.0f, 1.0f, RopeStyle::kNeoX, 16, 4, &rope), CudaStatus::kOk);
  cuda::DecodeAttentionParams p;
  p.n_queries = 1;
  p.n_heads = 1;
  p.list_len = 1;
  p.kv.n_kv_heads = 1;
  p.kv.chunk_size = 16;
  p.kv.head_dim = 96;
  p.rope = rope.get();
  EXPECT_EQ(cuda::DecodeAttention(p), CudaStatus::kUnsupported);
}

TEST(CudaKernelsTest, EmbeddingGathersRowsOfEveryDtype) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int vocab = 50, dim = 300;
  std::vector<int32_t> tokens = {3, 0, 49, 17, -1, 50, 17, 8};
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(DTypeName(t));
    TypedHost table{t, {}};
    table.Resize(vocab * dim);
    std::normal_distribution<float> dist;
    for (size_t i = 0; i < table.size(); ++i) table.Set(i, dist(rng));
    auto d_table = Upload(table.bytes);
    auto d_tokens = Upload(tokens);
    auto d_out = Poisoned<float>(tokens.size() * dim);
    cuda::EmbeddingParams p;
    p.d_table = d_table->get();
    p.dtype = t;
    p.d_tokens = d_tokens->as<int32_t>();
    p.n_tokens = static_cast<int64_t>(tokens.size());
    p.vocab = vocab;
    p.dim = dim;
    p.d_out = d_out->as<float>();
    ASSERT_EQ(cuda::Embedding(p), CudaStatus::kOk);
    std::vector<float> want(tokens.size() * dim, 0.0f);
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= vocab) continue;  // out of range: zeros
      for (int c = 0; c < dim; ++c) want[i * dim + c] = table.Get(tokens[i] * dim + c);
    }
    ExpectClose(Download<float>(*d_out, want.size()), want, 0.0, 0.0, "embedding");
  }
}

TEST(CudaKernelsTest, SwiGluMatchesCpu) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int64_t n = 100003;
  std::vector<float> gate = Normal(n, rng, 3.0f), up = Normal(n, rng);
  auto d_gate = Upload(gate);
  auto d_up = Upload(up);
  ASSERT_EQ(cuda::SwiGlu({d_gate->as<float>(), d_up->as<float>(), n}), CudaStatus::kOk);
  cpu::SiluMul(gate.data(), up.data(), n);
  ExpectClose(Download<float>(*d_gate, n), gate, 1e-6, 1e-5, "swiglu");
}

// ------------------------------------------------ model passes (server/backend_cuda/model_kernels.h)

std::vector<float> Bf16Values(const std::vector<uint16_t>& bits) {
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) v[i] = BF16BitsToF32(bits[i]);
  return v;
}

std::vector<uint16_t> Bf16Bits(const std::vector<float>& v) {
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) bits[i] = F32ToBF16Bits(v[i]);
  return bits;
}

// The BF16 output against the F32 reference: within half a BF16 step plus
// the F32 rounding of a different summation order.
constexpr double kBf16Rtol = 4e-3;

TEST(CudaModelKernelsTest, RmsNormToBf16MatchesCpu) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  // Rows in registers (768, 1020: a partial last float4 group, 32: most lanes idle); float4 loops
  // (2048); scalar (1001).
  for (const auto& [rows, dim] : {std::pair<int, int>{37, 768}, {4, 1020}, {3, 32}, {3, 2048}, {5, 1001}}) {
    SCOPED_TRACE("rows " + std::to_string(rows) + " dim " + std::to_string(dim));
    std::vector<float> x = Normal(rows * dim, rng, 2.0f), w = Normal(dim, rng), want(rows * dim);
    auto d_x = Upload(x);
    auto d_w = Upload(w);
    auto d_y = Poisoned<uint16_t>(rows * dim);
    ASSERT_EQ(backend_cuda::RmsNormToBf16(d_x->as<float>(), d_w->as<float>(), d_y->get(), rows, dim, 1e-5f, nullptr),
              CudaStatus::kOk);
    cpu::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, want.data());
    ExpectClose(Bf16Values(Download<uint16_t>(*d_y, rows * dim)), want, 1e-6, kBf16Rtol, "rmsnorm bf16");
  }
}

TEST(CudaModelKernelsTest, SwiGluRowsMatchesCpuInF32AndBf16) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  for (const int64_t ffn : {int64_t{2048}, int64_t{1001}}) {  // pairs per thread; one
    SCOPED_TRACE("ffn " + std::to_string(ffn));
    const int64_t rows = 7;
    std::vector<float> gu = Normal(rows * 2 * ffn, rng, 3.0f);
    // The reference on the values the kernel reads: F32, or rounded to BF16.
    const auto reference = [&](const std::vector<float>& in) {
      std::vector<float> want(rows * ffn);
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> gate(in.begin() + r * 2 * ffn, in.begin() + r * 2 * ffn + ffn);
        cpu::SiluMul(gate.data(), in.data() + r * 2 * ffn + ffn, ffn);
        std::copy(gate.begin(), gate.end(), want.begin() + r * ffn);
      }
      return want;
    };
    auto d_gu = Upload(gu);
    auto d_out = Poisoned<float>(rows * ffn);
    ASSERT_EQ(backend_cuda::SwiGluRows(d_gu->get(), DType::kF32, rows, ffn, d_out->get(), nullptr), CudaStatus::kOk);
    ExpectClose(Download<float>(*d_out, rows * ffn), reference(gu), 1e-6, 1e-5, "swiglu rows f32");

    const std::vector<uint16_t> gu16 = Bf16Bits(gu);
    auto d_gu16 = Upload(gu16);
    auto d_out16 = Poisoned<uint16_t>(rows * ffn);
    ASSERT_EQ(backend_cuda::SwiGluRows(d_gu16->get(), DType::kBF16, rows, ffn, d_out16->get(), nullptr),
              CudaStatus::kOk);
    ExpectClose(Bf16Values(Download<uint16_t>(*d_out16, rows * ffn)), reference(Bf16Values(gu16)), 1e-6, kBf16Rtol,
                "swiglu rows bf16");
  }
  EXPECT_EQ(backend_cuda::SwiGluRows(nullptr, DType::kF16, 1, 8, nullptr, nullptr), CudaStatus::kUnsupported);
}

// ---------------------------------------------------------------- RoPE

TEST(CudaKernelsTest, RopeMatchesCpuForBothStylesAbsoluteAndLocal) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  for (RopeStyle style : {RopeStyle::kNeoX, RopeStyle::kAdjacent}) {
    for (int64_t d : {64, 128}) {
      // Absolute; local with the tables' step; local with another modulus.
      for (int64_t modulus : {int64_t{0}, int64_t{256}, int64_t{100}}) {
        for (bool out_of_place : {false, true}) {
          SCOPED_TRACE(std::string(StyleName(style)) + " d=" + std::to_string(d) + " modulus=" +
                       std::to_string(modulus) + (out_of_place ? " from a wider source row" : " in place"));
          const int64_t rows = 37, heads = 3, stride = heads * d + 8, pos0 = 131000;
          const int64_t src_stride = 3 * heads * d;  // as the queries of a fused QKV row
          std::unique_ptr<cuda::RopeTables> tables;
          ASSERT_EQ(cuda::RopeTables::Create(d, 500000.0f, 2.0f, style, 256, 1, &tables), CudaStatus::kOk);
          std::vector<float> x = Normal(rows * stride, rng);
          const std::vector<float> src = Normal(rows * src_stride, rng);
          auto d_x = Upload(x);
          auto d_src = Upload(src);
          cuda::RopeParams p;
          p.d_x = d_x->as<float>();
          p.rows = rows;
          p.row_stride = stride;
          if (out_of_place) {
            p.d_src = d_src->as<float>();
            p.src_stride = src_stride;
            for (int64_t r = 0; r < rows; ++r) {  // the heads come from the source; the row's tail stays
              std::copy(src.begin() + r * src_stride, src.begin() + r * src_stride + heads * d,
                        x.begin() + r * stride);
            }
          }
          p.n_heads = heads;
          p.pos0 = pos0;
          p.pos_modulus = modulus;
          p.rope = tables.get();
          ASSERT_EQ(cuda::Rope(p), CudaStatus::kOk);
          cpu::Rope rope(d, 500000.0f, 2.0f, style);
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t pos = modulus > 0 ? (pos0 + r) % modulus : pos0 + r;
            rope.Apply(x.data() + r * stride, heads, static_cast<double>(pos));
          }
          ExpectClose(Download<float>(*d_x, x.size()), x, 1e-5, 1e-5, "rope");
        }
      }
    }
  }
}

// ---------------------------------------------------------------- KV append

TEST(CudaKernelsTest, KvAppendStoresLocalRopeKeysInEveryDtypeAndRotatesQueries) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int32_t w = 16, G = 2, d = 64, n_blocks = 5;
  const int64_t pos0 = 5, n = 60;  // chunks 0..4
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (RopeStyle style : {RopeStyle::kNeoX, RopeStyle::kAdjacent}) {
      SCOPED_TRACE(std::string(DTypeName(t)) + " " + StyleName(style));
      std::unique_ptr<cuda::RopeTables> tables;
      ASSERT_EQ(cuda::RopeTables::Create(d, 10000.0f, 1.0f, style, w, 1, &tables), CudaStatus::kOk);
      TestKvStore store(n_blocks, w, G, d, t);
      const size_t elems = static_cast<size_t>(n_blocks) * store.BlockElems();
      auto d_store = Poisoned<uint8_t>(elems * cuda::DTypeBytes(t));
      std::vector<int32_t> table = Permutation(n_blocks, rng);
      std::vector<float> k = Normal(n * G * d, rng), v = Normal(n * G * d, rng);
      auto d_k = Upload(k);
      auto d_v = Upload(v);
      auto d_table = Upload(table);
      cuda::KvAppendParams p;
      p.kv = store.Layer();
      p.kv.d_base = d_store->get();
      p.d_k = d_k->as<float>();
      p.d_v = d_v->as<float>();
      p.d_block_table = d_table->as<int32_t>();
      p.pos0 = pos0;
      p.n_tokens = n;
      p.rope = tables.get();
      std::unique_ptr<cuda::RopeTables> other_step;  // its local table is not the chunk's
      ASSERT_EQ(cuda::RopeTables::Create(d, 10000.0f, 1.0f, style, 2 * w, 1, &other_step), CudaStatus::kOk);
      p.rope = other_step.get();
      EXPECT_EQ(cuda::KvAppend(p), CudaStatus::kInvalidShape);
      p.rope = tables.get();
      // The same launch rotates H query heads out of wider rows (as from a
      // fused QKV row) into rows with a tail that stays untouched.
      const int64_t H = 3, q_stride = H * d + 5, q_out_stride = H * d + 3;
      const std::vector<float> q = Normal(n * q_stride, rng);
      auto d_q = Upload(q);
      auto d_q_out = Poisoned<float>(n * q_out_stride);
      p.d_q = d_q->as<float>();
      p.q_stride = q_stride;
      p.d_q_out = d_q_out->as<float>();
      p.q_out_stride = q_out_stride;
      p.n_q_heads = H;
      p.q_out_stride = H * d - 1;  // too narrow for the heads
      EXPECT_EQ(cuda::KvAppend(p), CudaStatus::kInvalidShape);
      p.q_out_stride = q_out_stride;
      ASSERT_EQ(cuda::KvAppend(p), CudaStatus::kOk);
      TypedHost got{t, Download<uint8_t>(*d_store, elems * cuda::DTypeBytes(t))};
      const std::vector<float> got_q = Download<float>(*d_q_out, n * q_out_stride);
      // Reference: cpu::Rope by the offset inside the chunk, then the dtype's rounding.
      cpu::Rope rope(d, 10000.0f, 1.0f, style);
      std::vector<float> got_k, want_k, got_v, want_v;
      std::vector<bool> written(elems, false);
      TypedHost round{t, {}};
      round.Resize(1);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = pos0 + i, u = pos % w;
        std::vector<float> kr(k.begin() + i * G * d, k.begin() + (i + 1) * G * d);
        rope.Apply(kr.data(), G, static_cast<double>(u));
        for (int32_t g = 0; g < G; ++g) {
          for (int32_t c = 0; c < d; ++c) {
            const int64_t kidx = store.HeadOffset(table[pos / w], g, false) + u * d + c;
            const int64_t vidx = kidx + store.BlockElems() / 2;
            written[kidx] = written[vidx] = true;
            got_k.push_back(got.Get(kidx));
            want_k.push_back(round.Set(0, kr[g * d + c]));
            got_v.push_back(got.Get(vidx));
            want_v.push_back(round.Set(0, v[(i * G + g) * d + c]));
          }
        }
      }
      // One rounding step of the dtype allowed where the rotation rounds differently.
      const double rtol = t == DType::kF32 ? 1e-5 : t == DType::kF16 ? 1.0 / 1024 : 1.0 / 128;
      ExpectClose(got_k, want_k, 1e-5, rtol, "keys");
      ExpectClose(got_v, want_v, 0.0, 0.0, "values");
      std::vector<float> got_qh, want_qh;
      for (int64_t i = 0; i < n; ++i) {
        std::vector<float> qr(q.begin() + i * q_stride, q.begin() + i * q_stride + H * d);
        rope.Apply(qr.data(), H, static_cast<double>((pos0 + i) % w));
        want_qh.insert(want_qh.end(), qr.begin(), qr.end());
        got_qh.insert(got_qh.end(), got_q.begin() + i * q_out_stride, got_q.begin() + i * q_out_stride + H * d);
        for (int64_t c = H * d; c < q_out_stride; ++c) {
          EXPECT_TRUE(std::isnan(got_q[i * q_out_stride + c])) << "row " << i << " tail written";
        }
      }
      ExpectClose(got_qh, want_qh, 1e-5, 1e-5, "queries");
      int touched = 0;
      for (size_t i = 0; i < elems; ++i) touched += !written[i] && !std::isnan(got.Get(i));
      EXPECT_EQ(touched, 0) << "elements written outside the appended positions";
    }
  }
}

// ---------------------------------------------------------------- summaries

struct SummaryCase {
  DType dtype;
  int32_t head_dim;
  int32_t chunk_size;
  bool adjacent;
};

TEST(CudaKernelsTest, ChunkSummariesMatchCpuForEveryKind) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const std::vector<SummaryCase> cases = {
      {DType::kF32, 64, 32, false}, {DType::kF32, 64, 32, true},   {DType::kBF16, 128, 32, false},
      {DType::kF16, 128, 48, true}, {DType::kBF16, 64, 256, true}, {DType::kF32, 128, 256, false}};
  for (const SummaryCase& sc : cases) {
    const int32_t d = sc.head_dim, w = sc.chunk_size, G = 2, H = 4, n_blocks = 4, n_chunks = 3;
    SCOPED_TRACE(std::string(DTypeName(sc.dtype)) + " d=" + std::to_string(d) + " w=" +
                 std::to_string(w) + (sc.adjacent ? " adjacent" : " neox"));
    TestKvStore store(n_blocks, w, G, d, sc.dtype);
    store.FillRandom(rng);
    std::vector<int32_t> blocks = {2, 0, 3};
    std::vector<float> queries = Normal(static_cast<size_t>(n_chunks) * H * w * d, rng);
    auto d_blocks = Upload(blocks);
    auto d_queries = Upload(queries);
    auto d_lh = Poisoned<float>(n_blocks * H * d);
    auto d_bound = Poisoned<float>(n_blocks * G * 2 * d);
    auto d_mean = Poisoned<float>(n_blocks * G * d);
    cuda::ChunkSummaryParams p;
    p.kv = store.Layer();
    p.d_blocks = d_blocks->as<int32_t>();
    p.n_chunks = n_chunks;
    p.d_queries = d_queries->as<float>();
    p.n_heads = H;
    p.adjacent_layout = sc.adjacent;
    p.out = {d_lh->as<float>(), d_bound->as<float>(), d_mean->as<float>()};
    ASSERT_EQ(cuda::BuildChunkSummaries(p), CudaStatus::kOk);
    const std::vector<float> lh = Download<float>(*d_lh, n_blocks * H * d);
    const std::vector<float> bound = Download<float>(*d_bound, n_blocks * G * 2 * d);
    const std::vector<float> mean = Download<float>(*d_mean, n_blocks * G * d);
    std::vector<float> got_b, want_b, got_m, want_m, got_l, want_l;
    std::vector<float> scratch(w * w + w + d), out(2 * d);
    for (int32_t ci = 0; ci < n_chunks; ++ci) {
      const int32_t b = blocks[ci];
      for (int32_t g = 0; g < G; ++g) {
        const std::vector<float> keys = store.Rows(b, g, false), values = store.Rows(b, g, true);
        BoundSummary(keys.data(), w, d, out.data());
        got_b.insert(got_b.end(), bound.begin() + (b * G + g) * 2 * d, bound.begin() + (b * G + g + 1) * 2 * d);
        want_b.insert(want_b.end(), out.begin(), out.begin() + 2 * d);
        MeanSummary(keys.data(), w, d, out.data());
        got_m.insert(got_m.end(), mean.begin() + (b * G + g) * d, mean.begin() + (b * G + g + 1) * d);
        want_m.insert(want_m.end(), out.begin(), out.begin() + d);
        for (int32_t h = g * (H / G); h < (g + 1) * (H / G); ++h) {
          LongHeadsSummary(queries.data() + (static_cast<size_t>(ci) * H + h) * w * d, keys.data(),
                           values.data(), w, d, sc.adjacent, scratch.data(), out.data());
          got_l.insert(got_l.end(), lh.begin() + (b * H + h) * d, lh.begin() + (b * H + h + 1) * d);
          want_l.insert(want_l.end(), out.begin(), out.begin() + d);
        }
      }
    }
    ExpectClose(got_b, want_b, 0.0, 0.0, "bound");
    ExpectClose(got_m, want_m, 1e-6, 1e-5, "mean");
    ExpectClose(got_l, want_l, 1e-4, 1e-3, "longheads");
    // Block 1 is not among the chunks: untouched.
    EXPECT_TRUE(std::isnan(lh[1 * H * d])) << "summary written for a block not listed";
  }
}

// ---------------------------------------------------------------- scores

TEST(CudaKernelsTest, ChunkScoresMatchCpuForEveryKindAndGqaMode) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int32_t H = 6, G = 2;
  // 3 queries: the warp kernel (decode); 37: the tiled kernel (compiled per
  // head size), several tiles with partial edges. Each all in the last chunk,
  // or a span (chunk_size > 0: query i in chunk (pos0 + i) / chunk_size, its
  // own candidates 1 .. c-2).
  struct Shape {
    int32_t n_q, n_chunks, chunk_size;
    int64_t pos0;
    int32_t d;
  };
  for (const Shape& shape : {Shape{3, 23, 0, 0, 64}, Shape{37, 75, 0, 0, 64}, Shape{3, 23, 4, 83, 64},
                             Shape{37, 75, 2, 74, 64}, Shape{37, 40, 3, 5, 128}, Shape{40, 9, 0, 0, 8}}) {
    const int32_t d = shape.d;
    const int32_t n_q = shape.n_q, n_chunks = shape.n_chunks;
    const auto chunk_of = [&](int32_t i) {
      return shape.chunk_size > 0 ? static_cast<int32_t>((shape.pos0 + i) / shape.chunk_size) : n_chunks - 1;
    };
    const int32_t n_blocks = n_chunks + 2;
    for (cuda::ScoreKind kind : {cuda::ScoreKind::kLongHeads, cuda::ScoreKind::kBound, cuda::ScoreKind::kMean}) {
      for (bool sum_group : {false, true}) {
        SCOPED_TRACE("kind " + std::to_string(static_cast<int>(kind)) + (sum_group ? " kv_head" : " query_head") +
                     " n_q " + std::to_string(n_q) + " n_chunks " + std::to_string(n_chunks) +
                     " chunk_size " + std::to_string(shape.chunk_size) + " d " + std::to_string(d));
        std::vector<float> lh = Normal(n_blocks * H * d, rng), bound = Normal(n_blocks * G * 2 * d, rng),
                           mean = Normal(n_blocks * G * d, rng), q = Normal(n_q * H * d, rng);
        std::vector<int32_t> table = Permutation(n_blocks, rng);
        table.resize(n_chunks);
        auto d_lh = Upload(lh);
        auto d_bound = Upload(bound);
        auto d_mean = Upload(mean);
        // With the group sums, the queries are read from wider rows (as the
        // queries of fused QKV rows).
        const int64_t q_stride = sum_group ? 3 * H * d : H * d;
        std::vector<float> q_rows(n_q * q_stride, NAN);
        for (int32_t i = 0; i < n_q; ++i) {
          std::copy(q.begin() + i * H * d, q.begin() + (i + 1) * H * d, q_rows.begin() + i * q_stride);
        }
        auto d_q = Upload(q_rows);
        auto d_table = Upload(table);
        auto d_scores = Poisoned<float>(n_q * H * n_chunks);
        cuda::ChunkScoreParams p;
        p.d_q = d_q->as<float>();
        p.q_stride = sum_group ? q_stride : 0;
        p.n_queries = n_q;
        p.n_heads = H;
        p.n_kv_heads = G;
        p.head_dim = d;
        p.summaries = {d_lh->as<float>(), d_bound->as<float>(), d_mean->as<float>()};
        p.kind = kind;
        p.d_block_table = d_table->as<int32_t>();
        p.n_chunks = n_chunks;
        p.pos0 = shape.pos0;
        p.chunk_size = shape.chunk_size;
        p.sum_over_group = sum_group;
        p.d_scores = d_scores->as<float>();
        ASSERT_EQ(cuda::ScoreChunks(p), CudaStatus::kOk);
        const std::vector<float> got = Download<float>(*d_scores, n_q * H * n_chunks);
        const SummaryKind cpu_kind = kind == cuda::ScoreKind::kLongHeads ? SummaryKind::kLongHeads
                                     : kind == cuda::ScoreKind::kBound   ? SummaryKind::kBound
                                                                         : SummaryKind::kMean;
        std::vector<float> want(n_q * H * n_chunks, NAN);
        for (int32_t i = 0; i < n_q; ++i) {
          for (int32_t h = 0; h < H; ++h) {
            const int32_t g = h / (H / G);
            for (int32_t j = 1; j <= chunk_of(i) - 2; ++j) {
              const int32_t b = table[j];
              const float* s = cpu_kind == SummaryKind::kLongHeads ? lh.data() + (b * H + h) * d
                               : cpu_kind == SummaryKind::kBound   ? bound.data() + (b * G + g) * 2 * d
                                                                   : mean.data() + (b * G + g) * d;
              want[(i * H + h) * n_chunks + j] = ScoreChunk(cpu_kind, q.data() + (i * H + h) * d, s, d);
            }
          }
          if (sum_group) {  // as PagedSequence: the group's rows summed in head order
            for (int32_t g = 0; g < G; ++g) {
              const int32_t h0 = g * (H / G);
              for (int32_t j = 1; j <= chunk_of(i) - 2; ++j) {
                float sum = want[(i * H + h0) * n_chunks + j];
                for (int32_t h = h0 + 1; h < h0 + H / G; ++h) sum += want[(i * H + h) * n_chunks + j];
                for (int32_t h = h0; h < h0 + H / G; ++h) want[(i * H + h) * n_chunks + j] = sum;
              }
            }
          }
        }
        std::vector<float> got_c, want_c;
        int untouched_written = 0;
        for (size_t idx = 0; idx < got.size(); ++idx) {
          const int32_t j = static_cast<int32_t>(idx % n_chunks);
          if (j >= 1 && j <= chunk_of(static_cast<int32_t>(idx / n_chunks / H)) - 2) {
            got_c.push_back(got[idx]);
            want_c.push_back(want[idx]);
          } else {
            untouched_written += !std::isnan(got[idx]);
          }
        }
        ExpectClose(got_c, want_c, 1e-4, 1e-5, "scores");
        EXPECT_EQ(untouched_written, 0) << "scores written for chunks 0 or >= c-1";
      }
    }
  }
}

// ---------------------------------------------------------------- selection

// The kernels' mirror of an AttentionPolicy.
cuda::SlotPolicy ToSlotPolicy(AttentionPolicy policy) {
  return policy == AttentionPolicy::kFull     ? cuda::SlotPolicy::kFull
         : policy == AttentionPolicy::kWindow ? cuda::SlotPolicy::kWindow
                                              : cuda::SlotPolicy::kLongHeads;
}

// SelectChunks on the device for p's shape and policy, with `scores` and the
// block `table` uploaded; the chunk and block lists (`entries` each, poisoned
// before the call) back on the host.
struct DeviceLists {
  std::vector<int32_t> chunks, blocks;
};
DeviceLists SelectOnDevice(cuda::SelectChunksParams p, const std::vector<float>& scores,
                           const std::vector<int32_t>& table, int64_t entries) {
  auto d_scores = Upload(scores);
  auto d_table = Upload(table);
  auto d_chunks = Poisoned<int32_t>(entries);
  auto d_blocks = Poisoned<int32_t>(entries);
  p.d_scores = d_scores->as<float>();
  p.d_block_table = d_table->as<int32_t>();
  p.d_chunks = d_chunks->as<int32_t>();
  p.d_blocks = d_blocks->as<int32_t>();
  EXPECT_EQ(cuda::SelectChunks(p), CudaStatus::kOk);
  return {Download<int32_t>(*d_chunks, entries), Download<int32_t>(*d_blocks, entries)};
}

TEST(CudaKernelsTest, SelectionMatchesCpuExactlyWithTiesAndNaN) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int32_t H = 3;
  // 6 rows: one block per row (decode); 600 rows (prefill): one thread per
  // row up to 16 chosen chunks of 64 candidates (c <= 66, slots <= 19), one
  // warp per row beyond.
  for (int32_t n_q : {2, 200}) {
    for (AttentionPolicy policy : {AttentionPolicy::kFull, AttentionPolicy::kWindow, AttentionPolicy::kLongHeads}) {
      for (int32_t slots : {3, 8, 16, 24}) {
        for (int32_t c : {0, 1, 2, 7, 8, 9, 15, 16, 40, 66, 67, 300, 700}) {
          SCOPED_TRACE(PolicyLabel(policy) + " slots=" + std::to_string(slots) + " c=" + std::to_string(c) +
                       " rows=" + std::to_string(n_q * H));
          LongContextParams params;
          params.policy = policy;
          params.chunk_size = 64;
          params.atten_length = slots * 64;
          const cuda::SlotPolicy gp = ToSlotPolicy(policy);
          const int32_t len = cuda::SlotListLength(gp, slots, c);
          // Coarse scores (many ties), some NaN and ±inf.
          std::vector<float> scores(n_q * H * (c + 1));
          std::uniform_int_distribution<int> level(0, 5), special(0, 40);
          for (float& s : scores) {
            const int sp = special(rng);
            s = sp == 0 ? NAN : sp == 1 ? -INFINITY : sp == 2 ? INFINITY : 0.5f * level(rng);
          }
          std::vector<int32_t> table = Permutation(c + 1, rng);
          cuda::SelectChunksParams p;
          p.policy = gp;
          p.slots = slots;
          p.c = c;
          p.n_queries = n_q;
          p.n_heads = H;
          const DeviceLists lists = SelectOnDevice(p, scores, table, n_q * H * len);
          ASSERT_FALSE(HasFailure());
          const std::vector<int32_t>& got = lists.chunks;
          const std::vector<int32_t>& got_blocks = lists.blocks;
          std::vector<int32_t> want;
          for (int32_t row = 0; row < n_q * H; ++row) {
            SelectChunks(params, c, scores.data() + row * (c + 1), &want);
            ASSERT_EQ(static_cast<int32_t>(want.size()), len);
            const std::vector<int32_t> g(got.begin() + row * len, got.begin() + (row + 1) * len);
            EXPECT_EQ(g, want) << "row " << row;
            for (int32_t s = 0; s < len; ++s) EXPECT_EQ(got_blocks[row * len + s], table[want[s]]);
          }
        }
      }
    }
  }
}

TEST(CudaKernelsTest, SelectChunksOverASpanRightAlignsEachQuerysList) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  // Queries from position 14 with 4-token chunks: chunks 3 .. 13 (or 53), so
  // the lists grow (full), or reach the slot count (window, longheads).
  const int32_t w = 4, slots = 5, H = 3;
  const int64_t pos0 = 14;
  // 120 rows: one block per row; 600 rows: one thread per row.
  for (int32_t n_q : {40, 200}) {
    const int32_t c_last = static_cast<int32_t>((pos0 + n_q - 1) / w);
    for (AttentionPolicy policy : {AttentionPolicy::kFull, AttentionPolicy::kWindow, AttentionPolicy::kLongHeads}) {
      SCOPED_TRACE(PolicyLabel(policy) + " rows=" + std::to_string(n_q * H));
      LongContextParams params;
      params.policy = policy;
      params.chunk_size = w;
      params.atten_length = slots * w;
      const cuda::SlotPolicy gp = ToSlotPolicy(policy);
      const int32_t stride = cuda::SlotListLength(gp, slots, c_last) + 2;  // wider than the longest list
      const std::vector<float> scores = Normal(n_q * H * (c_last + 1), rng);
      const std::vector<int32_t> table = Permutation(c_last + 1, rng);
      cuda::SelectChunksParams p;
      p.policy = gp;
      p.slots = slots;
      p.c = c_last;
      p.pos0 = pos0;
      p.chunk_size = w;
      p.n_queries = n_q;
      p.n_heads = H;
      p.row_stride = stride;
      const DeviceLists lists = SelectOnDevice(p, scores, table, n_q * H * stride);
      ASSERT_FALSE(HasFailure());
      const std::vector<int32_t>& got = lists.chunks;
      const std::vector<int32_t>& got_blocks = lists.blocks;
      std::vector<int32_t> list;
      for (int32_t row = 0; row < n_q * H; ++row) {
        const int64_t c = (pos0 + row / H) / w;
        SelectChunks(params, c, scores.data() + row * (c_last + 1), &list);
        std::vector<int32_t> want(stride - list.size(), -1);
        want.insert(want.end(), list.begin(), list.end());
        const std::vector<int32_t> g(got.begin() + row * stride, got.begin() + (row + 1) * stride);
        EXPECT_EQ(g, want) << "row " << row << " (chunk " << c << ")";
        for (int32_t e = 0; e < stride; ++e) {
          EXPECT_EQ(got_blocks[row * stride + e], want[e] < 0 ? -1 : table[want[e]])
              << "row " << row << " entry " << e;
        }
      }
    }
  }
}

// The decode rows of a batch: several sequences, each with its own block
// table and one or two consecutive positions (a two-token step may cross a
// chunk boundary), scored and selected in one launch each.
TEST(CudaKernelsTest, DecodeRowsOfSeveralSequencesAreScoredAndSelectedAsEachAlone) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int32_t H = 6, G = 2, d = 64, w = 16, slots = 8, n_blocks = 400;
  // 7 sequences: one block per row (<= 512 rows); 90: the many-rows kernels.
  for (int32_t n_seq : {7, 90}) {
    std::vector<std::vector<int32_t>> tables(n_seq);
    std::vector<int32_t> positions, row_seq;
    int32_t c_max = 0;
    std::uniform_int_distribution<int32_t> pos_of(0, 70 * w - 2), steps(1, 2);
    for (int32_t q = 0; q < n_seq; ++q) {
      const int32_t pos = q == 0 ? 2 * w - 1 : pos_of(rng);  // the first one's step crosses into chunk 2
      const int32_t n = q == 0 ? 2 : steps(rng);
      tables[q] = Permutation(n_blocks, rng);
      tables[q].resize((pos + n - 1) / w + 1);
      for (int32_t t = 0; t < n; ++t) {
        positions.push_back(pos + t);
        row_seq.push_back(q);
        c_max = std::max(c_max, (pos + t) / w);
      }
    }
    const int32_t n_q = static_cast<int32_t>(positions.size());
    std::vector<std::unique_ptr<DeviceBuffer>> d_tables;
    std::vector<const int32_t*> row_tables;
    for (const auto& t : tables) d_tables.push_back(Upload(t));
    for (int32_t q : row_seq) row_tables.push_back(d_tables[q]->as<int32_t>());
    auto d_row_tables = std::make_unique<DeviceBuffer>(row_tables.size() * sizeof(const int32_t*));
    ASSERT_EQ(cudaMemcpy(d_row_tables->get(), row_tables.data(), d_row_tables->bytes(), cudaMemcpyHostToDevice),
              cudaSuccess);
    auto d_positions = Upload(positions);
    const cuda::DecodeRows rows{d_positions->as<int32_t>(),
                                static_cast<const int32_t* const*>(d_row_tables->get())};
    const std::vector<float> bound = Normal(n_blocks * G * 2 * d, rng), q = Normal(n_q * H * d, rng);
    auto d_bound = Upload(bound);
    auto d_q = Upload(q);
    for (bool sum_group : {false, true}) {
      SCOPED_TRACE(std::to_string(n_seq) + " sequences, " + (sum_group ? "kv_head" : "query_head"));
      const int32_t n_chunks = c_max + 1;
      auto d_scores = Poisoned<float>(n_q * H * n_chunks);
      cuda::ChunkScoreParams sp;
      sp.d_q = d_q->as<float>();
      sp.n_queries = n_q;
      sp.n_heads = H;
      sp.n_kv_heads = G;
      sp.head_dim = d;
      sp.summaries = {nullptr, d_bound->as<float>(), nullptr};
      sp.kind = cuda::ScoreKind::kBound;
      sp.n_chunks = n_chunks;
      sp.chunk_size = w;
      sp.sum_over_group = sum_group;
      sp.d_scores = d_scores->as<float>();
      sp.rows = rows;
      ASSERT_EQ(cuda::ScoreChunks(sp), CudaStatus::kOk);
      const std::vector<float> scores = Download<float>(*d_scores, n_q * H * n_chunks);
      std::vector<float> got, want;
      for (int32_t i = 0; i < n_q; ++i) {
        const int32_t c = positions[i] / w;
        for (int32_t j = 1; j <= c - 2; ++j) {
          for (int32_t g = 0; g < G; ++g) {
            float group = 0.0f;
            std::vector<float> each;
            for (int32_t h = g * (H / G); h < (g + 1) * (H / G); ++h) {
              const float* s = bound.data() + (static_cast<int64_t>(tables[row_seq[i]][j]) * G + g) * 2 * d;
              each.push_back(ScoreChunk(SummaryKind::kBound, q.data() + (i * H + h) * d, s, d));
              group += each.back();
            }
            for (int32_t k = 0; k < H / G; ++k) {
              got.push_back(scores[(i * H + g * (H / G) + k) * n_chunks + j]);
              want.push_back(sum_group ? group : each[k]);
            }
          }
        }
      }
      ExpectClose(got, want, 1e-4, 1e-5, "decode row scores");
      for (AttentionPolicy policy : {AttentionPolicy::kFull, AttentionPolicy::kWindow, AttentionPolicy::kLongHeads}) {
        SCOPED_TRACE(PolicyLabel(policy));
        LongContextParams params;
        params.policy = policy;
        params.chunk_size = w;
        params.atten_length = slots * w;
        const cuda::SlotPolicy gp = ToSlotPolicy(policy);
        const int32_t stride = cuda::SlotListLength(gp, slots, c_max) + 1;  // wider than the longest list
        auto d_chunks = Poisoned<int32_t>(n_q * H * stride);
        auto d_blocks = Poisoned<int32_t>(n_q * H * stride);
        cuda::SelectChunksParams p;
        p.policy = gp;
        p.slots = slots;
        p.c = c_max;
        p.chunk_size = w;
        p.n_queries = n_q;
        p.n_heads = H;
        p.d_scores = d_scores->as<float>();
        p.d_chunks = d_chunks->as<int32_t>();
        p.d_blocks = d_blocks->as<int32_t>();
        p.row_stride = stride;
        p.rows = rows;
        ASSERT_EQ(cuda::SelectChunks(p), CudaStatus::kOk);
        const std::vector<int32_t> chunks = Download<int32_t>(*d_chunks, n_q * H * stride);
        const std::vector<int32_t> blocks = Download<int32_t>(*d_blocks, n_q * H * stride);
        std::vector<int32_t> list;
        for (int32_t row = 0; row < n_q * H; ++row) {
          const int32_t i = row / H, c = positions[i] / w;
          SelectChunks(params, c, scores.data() + static_cast<int64_t>(row) * n_chunks, &list);
          std::vector<int32_t> want_chunks(stride - list.size(), -1), want_blocks(stride - list.size(), -1);
          for (int32_t j : list) {
            want_chunks.push_back(j);
            want_blocks.push_back(tables[row_seq[i]][j]);
          }
          EXPECT_EQ(std::vector<int32_t>(chunks.begin() + row * stride, chunks.begin() + (row + 1) * stride),
                    want_chunks)
              << "row " << row << " (sequence " << row_seq[i] << ", chunk " << c << ")";
          EXPECT_EQ(std::vector<int32_t>(blocks.begin() + row * stride, blocks.begin() + (row + 1) * stride),
                    want_blocks)
              << "row " << row;
        }
      }
    }
  }
}

// Host arithmetic of the prefill kernels' tiles: no GPU needed.
TEST(CudaKernelsTest, SpanTilesCoverEveryQueryOnceInsideOneChunk) {
  for (int32_t w : {7, 16, 64, 256}) {
    for (int32_t rows : {32, 64, 128}) {
      for (int64_t pos0 : {int64_t{0}, int64_t{3}, int64_t{w - 1}, int64_t{5} * w, int64_t{5} * w + 2}) {
        for (int32_t n : {1, 2, w - 1, w, w + 1, 3 * w + 5, 700}) {
          if (n <= 0) continue;
          SCOPED_TRACE("w=" + std::to_string(w) + " rows=" + std::to_string(rows) +
                       " pos0=" + std::to_string(pos0) + " n=" + std::to_string(n));
          const cuda::SpanTiles t = cuda::SpanTiles::Make(pos0, n, w, rows);
          std::vector<int> seen(n, 0);
          for (int b = 0; b < t.Total(); ++b) {
            int q0 = 0, q_end = 0;
            t.Range(b, &q0, &q_end);
            ASSERT_LT(q0, q_end) << "tile " << b << " is empty";
            ASSERT_LE(q_end - q0, rows);
            ASSERT_GE(q0, 0);
            ASSERT_LE(q_end, n);
            EXPECT_EQ((pos0 + q0) / w, (pos0 + q_end - 1) / w) << "tile " << b << " crosses a chunk boundary";
            for (int q = q0; q < q_end; ++q) ++seen[q];
          }
          EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), n) << "every query in exactly one tile";
          int q0 = 0, q_end = 0;
          t.Range(t.Total(), &q0, &q_end);
          EXPECT_EQ(q0, q_end) << "past the last tile";
        }
      }
    }
  }
}

TEST(CudaKernelsTest, SpanBlocksAreNumberedOnceEachHeaviestTileFirst) {
  for (int tiles : {1, 2, 7, 32}) {
    for (int splits : {1, 2, 5}) {
      for (int heads : {1, 3, 12}) {
        SCOPED_TRACE("tiles=" + std::to_string(tiles) + " splits=" + std::to_string(splits) +
                     " heads=" + std::to_string(heads));
        const int64_t blocks = static_cast<int64_t>(tiles) * splits * heads;
        std::vector<int> seen(blocks, 0);
        int last_tile = tiles;
        for (int64_t b = 0; b < blocks; ++b) {
          const cuda::SpanBlock s = cuda::SpanBlockAt(b, tiles, splits, heads);
          ASSERT_GE(s.tile, 0);
          ASSERT_LT(s.tile, tiles);
          ASSERT_GE(s.split, 0);
          ASSERT_LT(s.split, splits);
          ASSERT_GE(s.head, 0);
          ASSERT_LT(s.head, heads);
          EXPECT_LE(s.tile, last_tile) << "block " << b << ": a lighter (earlier) tile before a heavier one";
          last_tile = s.tile;
          if (b > 0 && heads > 1) {
            EXPECT_EQ(s.head, (cuda::SpanBlockAt(b - 1, tiles, splits, heads).head + 1) % heads)
                << "heads vary fastest";
          }
          ++seen[(static_cast<int64_t>(s.tile) * splits + s.split) * heads + s.head];
        }
        EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), blocks) << "every (tile, split, head) exactly once";
      }
    }
  }
}

// The heaviest block's chunks after splitting, and the even share of all
// blocks' chunks over the slots (the work model of PrefillSplits).
struct SplitLoad {
  double heaviest = 0, share = 0, blocks = 0, chunk_ids = 0;
};
SplitLoad LoadOf(const cuda::SpanTiles& t, int64_t pos0, int stride, int heads, int64_t slots, int splits) {
  SplitLoad l;
  double work = 0;
  for (int b = 0; b < t.Total(); ++b) {
    int q0 = 0, q_end = 0;
    t.Range(b, &q0, &q_end);
    const int64_t ids = (pos0 + q0) / t.chunk_size + 1;
    const double w = static_cast<double>(std::min<int64_t>(ids, stride));
    work += w * heads;
    l.heaviest = std::max(l.heaviest, w / splits);
    l.chunk_ids = std::max(l.chunk_ids, static_cast<double>(ids));
  }
  l.share = work / slots;
  l.blocks = static_cast<double>(t.Total()) * heads * splits;
  return l;
}

// Host arithmetic of the tensor-core kernel's split-K plan: no GPU needed.
TEST(CudaKernelsTest, PrefillSplitsFillTheSlotsAndBalanceACausalSpan) {
  const int64_t slots = 132 * 2;  // an H100, two 128-query blocks per SM (head_dim 64)
  const auto splits = [&](int64_t pos0, int n, int stride, int max_splits) {
    return cuda::PrefillSplits(cuda::SpanTiles::Make(pos0, n, 256, 128), pos0, stride, 12, slots, max_splits);
  };
  // A 4096-token prompt, full attention: 384 blocks fill the device, but the
  // last chunk's tiles read all 16 chunks against an even share of 12.4.
  EXPECT_EQ(splits(0, 4096, 16, 16), 2);
  EXPECT_EQ(splits(0, 8192, 32, 16), 1);   // share 48 chunks >= the heaviest 32
  EXPECT_EQ(splits(0, 2048, 8, 16), 3);    // 192 blocks fill 2 splits; 8 chunks vs a share of 3.3
  EXPECT_EQ(splits(0, 512, 2, 16), 2);     // capped by the 2 chunk ids
  EXPECT_EQ(splits(131072 - 256, 256, 512, 16), 11);  // one chunk at 128K: 24 blocks fill 264 slots
  EXPECT_EQ(splits(131072 - 256, 256, 512, 4), 4);    // max_splits
  EXPECT_EQ(splits(131072 - 256, 256, 8, 16), 11);    // sparse lists: fill only
  EXPECT_EQ(splits(0, 4096, 8, 16), 1);               // sparse lists are not balanced by chunk ids
  EXPECT_EQ(cuda::PrefillSplits(cuda::SpanTiles::Make(0, 1, 256, 128), -256, 1, 12, slots, 0), 1);  // bad pos0
  EXPECT_EQ(splits(0, 1, 1, 0), 1);

  // Every shape: the smallest split count that both fills the slots and
  // keeps the heaviest block within an even share, unless capped.
  std::mt19937_64 rng(FreshSeed());
  for (int it = 0; it < 2000; ++it) {
    const int w = std::uniform_int_distribution<int>(1, 300)(rng);
    const int rows = std::uniform_int_distribution<int>(0, 1)(rng) ? 64 : 128;
    const int64_t pos0 = std::uniform_int_distribution<int64_t>(0, 40 * w)(rng);
    const int n = std::uniform_int_distribution<int>(1, 20 * w)(rng);
    const int heads = std::uniform_int_distribution<int>(1, 16)(rng);
    const int64_t c_last = (pos0 + n - 1) / w;
    const int stride = std::uniform_int_distribution<int>(1, static_cast<int>(c_last) + 1)(rng);
    const int64_t sl = std::uniform_int_distribution<int64_t>(1, 600)(rng);
    const int max_splits = std::uniform_int_distribution<int>(0, 20)(rng);
    const cuda::SpanTiles t = cuda::SpanTiles::Make(pos0, n, w, rows);
    const int s = cuda::PrefillSplits(t, pos0, stride, heads, sl, max_splits);
    SCOPED_TRACE("w=" + std::to_string(w) + " rows=" + std::to_string(rows) + " pos0=" + std::to_string(pos0) +
                 " n=" + std::to_string(n) + " heads=" + std::to_string(heads) + " stride=" +
                 std::to_string(stride) + " slots=" + std::to_string(sl) + " max=" + std::to_string(max_splits) +
                 " -> " + std::to_string(s));
    const SplitLoad got = LoadOf(t, pos0, stride, heads, sl, s);
    ASSERT_GE(s, 1);
    ASSERT_LE(s, got.chunk_ids);
    if (max_splits > 0) {
      ASSERT_LE(s, max_splits);
    }
    const bool capped = s == got.chunk_ids || s == max_splits;
    const bool dense = stride >= got.chunk_ids;  // balanced only then
    if (!capped) {
      EXPECT_GE(got.blocks, static_cast<double>(sl)) << "the blocks fill the slots";
      if (dense) {
        EXPECT_LE(got.heaviest, got.share * (1 + 1e-9)) << "the heaviest block within an even share";
      }
    }
    if (s > 1) {
      const SplitLoad fewer = LoadOf(t, pos0, stride, heads, sl, s - 1);
      EXPECT_TRUE(fewer.blocks < sl || (dense && fewer.heaviest > fewer.share * (1 + 1e-9)))
          << "one split fewer would do";
    }
  }
}

// ---------------------------------------------------------------- attention

// CPU reference for one (query, head): cpu::SlotAttention over the list.
std::vector<float> CpuSlotAttention(const TestKvStore& store, const float* q_local,
                                    const std::vector<int32_t>& blocks, int64_t u, int32_t g,
                                    const cpu::RopeStepTable& steps, float scale) {
  const int32_t d = store.head_dim, w = store.chunk_size;
  const int64_t L = static_cast<int64_t>(blocks.size());
  std::vector<std::vector<float>> keys(L), values(L);
  std::vector<cpu::SlotChunk> chunks(L);
  for (int64_t s = 0; s < L; ++s) {
    keys[s] = store.Rows(blocks[s], g, false);
    values[s] = store.Rows(blocks[s], g, true);
    chunks[s] = {keys[s].data(), values[s].data(), s == L - 1 ? u + 1 : w, L - 1 - s};
  }
  std::vector<float> out(d), scratch(w + d);
  cpu::SlotAttentionParams sp;
  sp.q_local = q_local;
  sp.chunks = chunks.data();
  sp.n_chunks = L;
  sp.head_dim = d;
  sp.scale = scale;
  sp.steps = &steps;
  sp.out = out.data();
  sp.scratch = scratch.data();
  cpu::SlotAttention(sp);
  return out;
}

struct AttentionCase {
  DType dtype;
  int32_t head_dim;
  int32_t chunk_size;
  RopeStyle style;
};

std::vector<AttentionCase> AttentionCases() {
  return {{DType::kF32, 64, 32, RopeStyle::kNeoX},      {DType::kBF16, 64, 256, RopeStyle::kAdjacent},
          {DType::kF16, 128, 100, RopeStyle::kNeoX},    {DType::kF32, 128, 256, RopeStyle::kAdjacent},
          {DType::kBF16, 128, 64, RopeStyle::kNeoX},    {DType::kF16, 64, 128, RopeStyle::kAdjacent}};
}

// The launch `attend` of p again with BF16 output (the input of a BF16 GEMM):
// f32 (its F32 output) rounded once, bit for bit; F16 output is kUnsupported.
template <typename Params>
void ExpectBf16OutputIsRoundedF32(Params p, CudaStatus (*attend)(const Params&), const std::vector<float>& f32,
                                  const std::string& what) {
  auto d_out16 = Poisoned<uint16_t>(f32.size());
  p.d_out = d_out16->get();
  p.out_dtype = DType::kBF16;
  ASSERT_EQ(attend(p), CudaStatus::kOk) << what;
  EXPECT_EQ(Download<uint16_t>(*d_out16, f32.size()), Bf16Bits(f32)) << what << ", BF16 output";
  p.out_dtype = DType::kF16;
  EXPECT_EQ(attend(p), CudaStatus::kUnsupported) << what;
}

TEST(CudaKernelsTest, DecodeAttentionMatchesCpuSlotAttention) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  for (const AttentionCase& ac : AttentionCases()) {
    for (int32_t max_splits : {1, 3, 0}) {
      const int32_t d = ac.head_dim, w = ac.chunk_size, G = 2, H = 4, n_q = 3, L = 5, n_blocks = 12;
      SCOPED_TRACE(std::string(DTypeName(ac.dtype)) + " d=" + std::to_string(d) + " w=" + std::to_string(w) +
                   " " + StyleName(ac.style) + " max_splits=" + std::to_string(max_splits));
      TestKvStore store(n_blocks, w, G, d, ac.dtype);
      store.FillRandom(rng);
      std::unique_ptr<cuda::RopeTables> tables;
      ASSERT_EQ(cuda::RopeTables::Create(d, 10000.0f, 1.0f, ac.style, w, L, &tables), CudaStatus::kOk);
      cpu::Rope rope(d, 10000.0f, 1.0f, ac.style);
      cpu::RopeStepTable steps(rope, w);
      steps.Reserve(L);
      // Each query its own position (own chunk offset u) and, per head, up to
      // L distinct blocks in any order (the last is its own chunk); shorter
      // lists (queries of other sequences) right-aligned with -1 before.
      std::vector<int32_t> positions(n_q), lists(n_q * H * L, -1);
      const auto list_len = [&](int32_t i, int32_t h) { return L - (i + h) % 3; };
      std::uniform_int_distribution<int32_t> offset(0, w - 1);
      for (int32_t i = 0; i < n_q; ++i) {
        positions[i] = (L + 3 * i) * w + (i == 0 ? 0 : i == 1 ? w - 1 : offset(rng));
        for (int32_t h = 0; h < H; ++h) {
          std::vector<int32_t> b = Permutation(n_blocks, rng);
          std::copy(b.begin(), b.begin() + list_len(i, h), lists.begin() + (i * H + h + 1) * L - list_len(i, h));
        }
      }
      const std::vector<float> q = Normal(n_q * H * d, rng);
      auto d_q = Upload(q);
      auto d_pos = Upload(positions);
      auto d_lists = Upload(lists);
      auto d_out = Poisoned<float>(n_q * H * d);
      const int32_t ws_splits = max_splits == 0 ? 512 : max_splits;
      DeviceBuffer ws(cuda::DecodeAttentionWorkspaceBytes(n_q, H, d, ws_splits));
      cuda::DecodeAttentionParams p;
      p.d_q_local = d_q->as<float>();
      p.d_positions = d_pos->as<int32_t>();
      p.d_blocks = d_lists->as<int32_t>();
      p.list_len = L;
      p.n_queries = n_q;
      p.n_heads = H;
      p.kv = store.Layer();
      p.rope = tables.get();
      p.scale = 1.0f / std::sqrt(static_cast<float>(d));
      p.d_out = d_out->as<float>();
      p.d_workspace = ws.as<float>();
      p.workspace_bytes = ws.bytes();
      p.max_splits = max_splits;
      ASSERT_EQ(cuda::DecodeAttention(p), CudaStatus::kOk);
      std::vector<float> want;
      for (int32_t i = 0; i < n_q; ++i) {
        for (int32_t h = 0; h < H; ++h) {
          const std::vector<int32_t> blocks(lists.begin() + (i * H + h + 1) * L - list_len(i, h),
                                            lists.begin() + (i * H + h + 1) * L);
          const std::vector<float> o = CpuSlotAttention(store, q.data() + (i * H + h) * d, blocks,
                                                        positions[i] % w, h / (H / G), steps, p.scale);
          want.insert(want.end(), o.begin(), o.end());
        }
      }
      const std::vector<float> got = Download<float>(*d_out, want.size());
      ExpectClose(got, want, 5e-5, 5e-4, "decode attention");
      ExpectBf16OutputIsRoundedF32(p, cuda::DecodeAttention, got, "decode attention");
      p.d_out = d_out->as<float>() + 1;  // output pairs need 8-byte alignment
      EXPECT_EQ(cuda::DecodeAttention(p), CudaStatus::kInvalidShape);
    }
  }
}

// The kernel variants of PrefillAttention: tensor cores with automatic
// splits, tensor cores in one split, and the FP32 SIMT kernel.
int ComputeCapabilityMajor() {
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    return 0;
  }
  return major;
}

struct PrefillVariant {
  bool tensor_cores;
  int32_t max_splits;
  const char* label;
  int32_t workspace_splits = 0;  // > 0: a workspace for this many splits only (fewer than wanted)
  int32_t warp_rows = 0;         // PrefillAttentionParams::warp_rows
};

TEST(CudaKernelsTest, PrefillAttentionMatchesCpuWithPerTokenListsOverASpanOfChunks) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const PrefillVariant variants[] = {{true, 0, "tensor cores, auto splits"},
                                     {true, 0, "tensor cores, workspace for 2 splits", 2},
                                     {true, 1, "tensor cores, one split"},
                                     {true, 0, "tensor cores, 16 rows per warp", 0, 16},
                                     {true, 0, "tensor cores, 32 rows per warp (head_dim 64)", 0, 32},
                                     {false, 0, "simt"}};
  for (const AttentionCase& ac : AttentionCases()) {
    for (AttentionPolicy policy : {AttentionPolicy::kLongHeads, AttentionPolicy::kFull}) {
      for (const PrefillVariant& variant : variants) {
        // The span starts 3 tokens into chunk c0 and ends inside a later
        // chunk (two or three chunks, the first and last partial).
        const int32_t d = ac.head_dim, w = ac.chunk_size, G = 2, H = 4, slots = 5, c0 = 7;
        const int64_t pos0 = static_cast<int64_t>(c0) * w + 3;
        const int32_t n_q = w + 40;
        const int32_t c_last = static_cast<int32_t>((pos0 + n_q - 1) / w);
        const int32_t n_chunks = c_last + 1, n_blocks = n_chunks + 2;
        SCOPED_TRACE(std::string(DTypeName(ac.dtype)) + " d=" + std::to_string(d) +
                     " w=" + std::to_string(w) + " " + StyleName(ac.style) + " " + PolicyLabel(policy) + " " +
                     variant.label);
        TestKvStore store(n_blocks, w, G, d, ac.dtype);
        store.FillRandom(rng);
        // Tensor cores round the rotated queries and the probabilities to the
        // store's dtype (attention.h); the SIMT kernel is FP32 throughout.
        const bool applies = cuda::PrefillUsesTensorCores(store.Layer());
        if (ac.dtype != DType::kF32 && ComputeCapabilityMajor() >= 8) {
          EXPECT_TRUE(applies) << "BF16/F16 stores with head_dim 64/128 run on tensor cores";
        }
        if (!applies && &variant != &variants[0]) continue;  // the SIMT kernel again
        const bool tc = variant.tensor_cores && applies;
        const float tol = !tc ? 5e-5f : ac.dtype == DType::kBF16 ? 2e-2f : 4e-3f;
        const float rtol = !tc ? 5e-4f : tol;
        LongContextParams params;
        params.policy = policy;
        params.chunk_size = w;
        params.atten_length = slots * w;
        // Per-token selections from random scores: the lists differ per query
        // (and in length from chunk to chunk under `full`); right-aligned rows
        // of the last chunk's length, -1 before.
        std::vector<int32_t> table = Permutation(n_blocks, rng);
        std::vector<std::vector<int32_t>> row_lists;
        std::vector<int32_t> list;
        for (int32_t i = 0; i < n_q * H; ++i) {
          const int32_t c = static_cast<int32_t>((pos0 + i / H) / w);
          const std::vector<float> scores = Normal(c + 1, rng);
          SelectChunks(params, c, scores.data(), &list);
          row_lists.push_back(list);
        }
        const int32_t stride = static_cast<int32_t>(row_lists.back().size());
        std::vector<int32_t> lists;
        for (const std::vector<int32_t>& l : row_lists) {
          ASSERT_LE(static_cast<int32_t>(l.size()), stride);
          lists.insert(lists.end(), stride - l.size(), -1);
          lists.insert(lists.end(), l.begin(), l.end());
        }
        std::unique_ptr<cuda::RopeTables> tables;
        ASSERT_EQ(cuda::RopeTables::Create(d, 10000.0f, 1.0f, ac.style, w, stride, &tables), CudaStatus::kOk);
        cpu::Rope rope(d, 10000.0f, 1.0f, ac.style);
        cpu::RopeStepTable steps(rope, w);
        steps.Reserve(stride);
        const std::vector<float> q = Normal(n_q * H * d, rng);
        auto d_q = Upload(q);
        auto d_lists = Upload(lists);
        auto d_table = Upload(table);
        auto d_out = Poisoned<float>(n_q * H * d);
        cuda::PrefillAttentionParams p;
        p.d_q_local = d_q->as<float>();
        p.pos0 = pos0;
        p.n_queries = n_q;
        p.n_heads = H;
        p.d_chunks = d_lists->as<int32_t>();
        p.list_stride = stride;
        p.d_block_table = d_table->as<int32_t>();
        p.kv = store.Layer();
        p.rope = tables.get();
        p.scale = 1.0f / std::sqrt(static_cast<float>(d));
        p.d_out = d_out->as<float>();
        p.max_splits = variant.max_splits;
        p.tensor_cores = variant.tensor_cores;
        p.warp_rows = variant.warp_rows;
        DeviceBuffer ws(variant.workspace_splits > 0
                            ? cuda::PrefillAttentionWorkspaceBytes(n_q, H, d, variant.workspace_splits)
                            : std::max<size_t>(cuda::PrefillAttentionWorkspaceWanted(p), 16));
        p.d_workspace = ws.as<float>();
        p.workspace_bytes = ws.bytes();
        ASSERT_EQ(cuda::PrefillAttention(p), CudaStatus::kOk);
        std::vector<float> want;
        for (int32_t i = 0; i < n_q; ++i) {
          for (int32_t h = 0; h < H; ++h) {
            std::vector<int32_t> blocks;
            for (int32_t chunk : row_lists[i * H + h]) blocks.push_back(table[chunk]);
            const std::vector<float> o = CpuSlotAttention(store, q.data() + (i * H + h) * d, blocks,
                                                          (pos0 + i) % w, h / (H / G), steps, p.scale);
            want.insert(want.end(), o.begin(), o.end());
          }
        }
        const std::vector<float> got = Download<float>(*d_out, want.size());
        ExpectClose(got, want, tol, rtol, "prefill attention");
        ExpectBf16OutputIsRoundedF32(p, cuda::PrefillAttention, got, "prefill attention");
        p.warp_rows = 24;  // 16 or 32 only
        EXPECT_EQ(cuda::PrefillAttention(p), CudaStatus::kInvalidShape);
        p.warp_rows = variant.warp_rows;
        p.d_q_local = d_q->as<float>() + 1;  // 4-byte aligned: the tensor-core kernel reads 16 bytes at a time
        EXPECT_EQ(cuda::PrefillAttention(p), CudaStatus::kInvalidShape);
        p.d_q_local = d_q->as<float>();
        p.d_out = d_out->as<float>() + 1;  // output pairs need 8-byte alignment
        EXPECT_EQ(cuda::PrefillAttention(p), CudaStatus::kInvalidShape);
        if (policy == AttentionPolicy::kFull) {
          // The same lists left to the kernel (dense: chunks 0 .. c per query).
          auto d_dense_out = Poisoned<float>(n_q * H * d);
          p.d_chunks = nullptr;
          p.d_out = d_dense_out->as<float>();
          ASSERT_EQ(cuda::PrefillAttention(p), CudaStatus::kOk);
          ExpectClose(Download<float>(*d_dense_out, want.size()), want, tol, rtol, "prefill attention, dense lists");
          p.list_stride = c_last;  // too short for the span's last chunk
          EXPECT_EQ(cuda::PrefillAttention(p), CudaStatus::kInvalidShape);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- GEMM

TEST(CudaKernelsTest, GemmMatchesCpuInFp32AndBf16) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(FreshSeed());
  const int64_t m = 33, n = 70, k = 765;
  for (DType ab : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (DType cd : {DType::kF32, ab}) {
      if (ab == DType::kF32 && cd != DType::kF32) continue;
      SCOPED_TRACE(std::string(DTypeName(ab)) + " -> " + DTypeName(cd));
      TypedHost a{ab, {}}, b{ab, {}};
      a.Resize(m * k);
      b.Resize(n * k);
      std::vector<float> af(m * k), bf(n * k);
      std::normal_distribution<float> dist;
      for (int64_t i = 0; i < m * k; ++i) af[i] = a.Set(i, dist(rng));
      for (int64_t i = 0; i < n * k; ++i) bf[i] = b.Set(i, dist(rng));
      auto d_a = Upload(a.bytes);
      auto d_b = Upload(b.bytes);
      auto d_c = Poisoned<uint8_t>(m * n * cuda::DTypeBytes(cd));
      cuda::GemmParams p;
      p.d_a = d_a->get();
      p.d_b = d_b->get();
      p.d_c = d_c->get();
      p.m = m;
      p.n = n;
      p.k = k;
      p.ab_dtype = ab;
      p.c_dtype = cd;
      ASSERT_EQ(cuda::Gemm(p), CudaStatus::kOk);
      std::vector<float> want(m * n);
      cpu::MatMulWtReference(af.data(), m, k, bf.data(), n, want.data());
      TypedHost got{cd, Download<uint8_t>(*d_c, m * n * cuda::DTypeBytes(cd))};
      std::vector<float> gotf(m * n);
      for (int64_t i = 0; i < m * n; ++i) gotf[i] = got.Get(i);
      // Exact products of the rounded inputs, FP32 sums (|c| ~ 28): order only;
      // a 16-bit output adds its own rounding.
      const double rtol = cd == DType::kF32 ? 1e-5 : cd == DType::kF16 ? 1.0 / 1024 : 1.0 / 128;
      ExpectClose(gotf, want, 2e-3, rtol, "gemm");
    }
  }
}

}  // namespace
}  // namespace hr
