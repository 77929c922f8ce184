#include "server/kvcache/block_pool.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "server/common/status.h"
#include "server/model/dtype.h"

namespace hr {
namespace {

int64_t ElementBytes(KvDType dtype) { return dtype == KvDType::kF32 ? 4 : 2; }

uint16_t F32ToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

BlockPool::BlockPool(const KvGeometry& geometry, KvDType dtype, int64_t budget_bytes)
    : geometry_(geometry), dtype_(dtype), budget_bytes_(budget_bytes) {}

int64_t BlockPool::KvElementsPerLayer(int32_t chunk_size) const {
  return 2 * geometry_.n_kv_heads * static_cast<int64_t>(chunk_size) * geometry_.head_dim;
}

int64_t BlockPool::SummaryFloatsPerLayer() const {
  return (geometry_.n_heads + 3 * geometry_.n_kv_heads) * geometry_.head_dim;
}

int64_t BlockPool::BlockBytes(int32_t chunk_size) const {
  return geometry_.n_layers * (KvElementsPerLayer(chunk_size) * ElementBytes(dtype_) +
                               SummaryFloatsPerLayer() * static_cast<int64_t>(sizeof(float)));
}

void BlockPool::FreeDeleter::operator()(uint8_t* p) const { std::free(p); }

// A block's K/V of several MB (a 100M model's 256-token chunk is ~19 MB in
// F32) goes on 2 MB-aligned memory marked for transparent huge pages: a
// decode step reads a few chunks per head from anywhere in a pool of many GB,
// and with 4 KB pages every 4 KB of it costs a TLB miss (a nested page walk
// under a VM). Small blocks (the demo model's are 64 KB) stay plain: huge
// pages would round them up 30-fold. Where THP is off, madvise is a no-op.
BlockPool::KvStorage BlockPool::AllocateKvStorage(size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20;
  void* p = nullptr;
  if (bytes >= 2 * kHugePage) {
    if (posix_memalign(&p, kHugePage, bytes) != 0) p = nullptr;
    if (p != nullptr) madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
  } else {
    p = std::malloc(bytes == 0 ? 1 : bytes);
  }
  if (p == nullptr) throw std::bad_alloc();
  return KvStorage(static_cast<uint8_t*>(p));
}

absl::StatusOr<int32_t> BlockPool::Allocate(int32_t chunk_size) {
  HR_CHECK(chunk_size > 0, "chunk_size must be positive");
  auto it = free_by_size_.find(chunk_size);
  if (it != free_by_size_.end() && !it->second.empty()) {
    const int32_t id = it->second.back();
    it->second.pop_back();
    blocks_[id].refs = 1;
    ++blocks_in_use_;
    live_bytes_ += BlockBytes(chunk_size);
    return id;
  }
  const int64_t bytes = BlockBytes(chunk_size);
  if (used_bytes_ + bytes > budget_bytes_) {
    // Give back recycled blocks of other sizes before failing.
    for (auto& [size, ids] : free_by_size_) {
      while (!ids.empty() && used_bytes_ + bytes > budget_bytes_) {
        Block& b = blocks_[ids.back()];
        used_bytes_ -= BlockBytes(b.chunk_size);
        b.kv.reset();
        b.summaries.reset();
        b.chunk_size = 0;
        ids.pop_back();  // the id stays retired (its slot holds no storage)
      }
    }
    if (used_bytes_ + bytes > budget_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "KV cache full: a block of ", chunk_size, " tokens needs ", bytes, " bytes; ",
          used_bytes_, " of ", budget_bytes_, " bytes in use by ", blocks_in_use_, " blocks"));
    }
  }
  Block b;
  b.kv = AllocateKvStorage(
      static_cast<size_t>(geometry_.n_layers * KvElementsPerLayer(chunk_size) * ElementBytes(dtype_)));
  b.summaries.reset(new float[geometry_.n_layers * SummaryFloatsPerLayer()]());
  b.chunk_size = chunk_size;
  b.refs = 1;
  used_bytes_ += bytes;
  live_bytes_ += bytes;
  ++blocks_in_use_;
  blocks_.push_back(std::move(b));
  return static_cast<int32_t>(blocks_.size() - 1);
}

BlockPool::Block& BlockPool::At(int32_t block) {
  HR_CHECK(block >= 0 && block < static_cast<int32_t>(blocks_.size()) && blocks_[block].refs > 0,
           "block id not live");
  return blocks_[block];
}

const BlockPool::Block& BlockPool::At(int32_t block) const {
  HR_CHECK(block >= 0 && block < static_cast<int32_t>(blocks_.size()) && blocks_[block].refs > 0,
           "block id not live");
  return blocks_[block];
}

void BlockPool::Retain(int32_t block) { ++At(block).refs; }

void BlockPool::Release(int32_t block) {
  Block& b = At(block);
  if (--b.refs == 0) {
    --blocks_in_use_;
    live_bytes_ -= BlockBytes(b.chunk_size);
    free_by_size_[b.chunk_size].push_back(block);
  }
}

const uint8_t* BlockPool::KvPtr(int32_t block, int64_t layer, bool values, int64_t kv_head) const {
  const Block& b = At(block);
  const int64_t head_elems = static_cast<int64_t>(b.chunk_size) * geometry_.head_dim;
  const int64_t offset = layer * KvElementsPerLayer(b.chunk_size) +
                         (values ? geometry_.n_kv_heads * head_elems : 0) + kv_head * head_elems;
  return b.kv.get() + offset * ElementBytes(dtype_);
}

void BlockPool::Write(int32_t block, int64_t layer, int64_t u, const float* k, const float* v) {
  const int64_t d = geometry_.head_dim;
  for (int pass = 0; pass < 2; ++pass) {
    const float* src = pass == 0 ? k : v;
    for (int64_t h = 0; h < geometry_.n_kv_heads; ++h) {
      uint8_t* dst = const_cast<uint8_t*>(KvPtr(block, layer, pass == 1, h)) + u * d * ElementBytes(dtype_);
      const float* s = src + h * d;
      switch (dtype_) {
        case KvDType::kF32:
          std::memcpy(dst, s, d * sizeof(float));
          break;
        case KvDType::kF16:
          for (int64_t i = 0; i < d; ++i) {
            const uint16_t h16 = F32ToF16(s[i]);
            std::memcpy(dst + 2 * i, &h16, 2);
          }
          break;
        case KvDType::kBF16:
          for (int64_t i = 0; i < d; ++i) {
            const uint16_t b16 = F32ToBF16(s[i]);
            std::memcpy(dst + 2 * i, &b16, 2);
          }
          break;
      }
    }
  }
}

const float* BlockPool::ReadKv(int32_t block, int64_t layer, bool values, int64_t kv_head,
                               int64_t n_tokens, float* scratch) const {
  const uint8_t* p = KvPtr(block, layer, values, kv_head);
  if (dtype_ == KvDType::kF32) return reinterpret_cast<const float*>(p);
  ConvertToF32(dtype_ == KvDType::kF16 ? DType::kF16 : DType::kBF16, p,
               static_cast<uint64_t>(n_tokens * geometry_.head_dim), scratch);
  return scratch;
}

const float* BlockPool::Keys(int32_t block, int64_t layer, int64_t kv_head, int64_t n_tokens,
                             float* scratch) const {
  return ReadKv(block, layer, false, kv_head, n_tokens, scratch);
}

const float* BlockPool::Values(int32_t block, int64_t layer, int64_t kv_head, int64_t n_tokens,
                               float* scratch) const {
  return ReadKv(block, layer, true, kv_head, n_tokens, scratch);
}

const float* BlockPool::LongHeadsSummary(int32_t block, int64_t layer) const {
  return At(block).summaries.get() + layer * SummaryFloatsPerLayer();
}
const float* BlockPool::BoundSummary(int32_t block, int64_t layer) const {
  return LongHeadsSummary(block, layer) + geometry_.n_heads * geometry_.head_dim;
}
const float* BlockPool::MeanSummary(int32_t block, int64_t layer) const {
  return BoundSummary(block, layer) + 2 * geometry_.n_kv_heads * geometry_.head_dim;
}
float* BlockPool::LongHeadsSummary(int32_t block, int64_t layer) {
  return const_cast<float*>(static_cast<const BlockPool*>(this)->LongHeadsSummary(block, layer));
}
float* BlockPool::BoundSummary(int32_t block, int64_t layer) {
  return const_cast<float*>(static_cast<const BlockPool*>(this)->BoundSummary(block, layer));
}
float* BlockPool::MeanSummary(int32_t block, int64_t layer) {
  return const_cast<float*>(static_cast<const BlockPool*>(this)->MeanSummary(block, layer));
}

int32_t BlockPool::chunk_size(int32_t block) const { return At(block).chunk_size; }
int32_t BlockPool::ref_count(int32_t block) const {
  HR_CHECK(block >= 0 && block < static_cast<int32_t>(blocks_.size()), "block id out of range");
  return blocks_[block].refs;
}

}  // namespace hr
