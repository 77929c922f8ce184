#include "server/backend_cuda/cuda_kv_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status.h"

namespace hr {

cuda::DType ToCudaDType(KvDType dtype) {
  switch (dtype) {
    case KvDType::kF32:
      return cuda::DType::kF32;
    case KvDType::kF16:
      return cuda::DType::kF16;
    case KvDType::kBF16:
      return cuda::DType::kBF16;
  }
  return cuda::DType::kF32;
}

int64_t CudaKvCache::BlockBytes(const KvGeometry& g, KvDType dtype, int32_t chunk_size) {
  const int64_t kv = 2 * g.n_kv_heads * chunk_size * g.head_dim * cuda::DTypeBytes(ToCudaDType(dtype));
  const int64_t summaries = (g.n_heads + 3 * g.n_kv_heads) * g.head_dim * int64_t{4};
  return g.n_layers * (kv + summaries);
}

absl::StatusOr<std::unique_ptr<CudaKvCache>> CudaKvCache::Create(const KvGeometry& g, KvDType dtype,
                                                                 int32_t chunk_size,
                                                                 int64_t budget_bytes) {
  if (g.n_layers <= 0 || g.n_heads <= 0 || g.n_kv_heads <= 0 || g.head_dim <= 0 ||
      g.n_heads % g.n_kv_heads != 0 || chunk_size <= 0) {
    return absl::InvalidArgumentError("CUDA KV cache: bad geometry or chunk size");
  }
  const int64_t per_block = BlockBytes(g, dtype, chunk_size);
  const int64_t n_blocks = std::min<int64_t>(budget_bytes / per_block, (int64_t{1} << 31) - 1);
  if (n_blocks <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA KV cache: budget ", budget_bytes, " bytes is below one block (", per_block, ")"));
  }
  std::unique_ptr<CudaKvCache> cache(new CudaKvCache(g, dtype, chunk_size, static_cast<int32_t>(n_blocks)));
  const int64_t kv_elems = 2 * g.n_kv_heads * chunk_size * g.head_dim;
  HR_RETURN_IF_ERROR(cache->kv_.Reserve(g.n_layers * n_blocks * kv_elems *
                                        cuda::DTypeBytes(ToCudaDType(dtype))));
  HR_RETURN_IF_ERROR(cache->longheads_.Reserve(g.n_layers * n_blocks * g.n_heads * g.head_dim * 4));
  HR_RETURN_IF_ERROR(cache->bound_.Reserve(g.n_layers * n_blocks * g.n_kv_heads * 2 * g.head_dim * 4));
  HR_RETURN_IF_ERROR(cache->mean_.Reserve(g.n_layers * n_blocks * g.n_kv_heads * g.head_dim * 4));
  return cache;
}

CudaKvCache::CudaKvCache(const KvGeometry& geometry, KvDType dtype, int32_t chunk_size, int32_t n_blocks)
    : geometry_(geometry), dtype_(dtype), chunk_size_(chunk_size), refs_(n_blocks, 0) {
  free_.reserve(n_blocks);
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_.push_back(b);  // block 0 first
}

absl::StatusOr<int32_t> CudaKvCache::Allocate() {
  if (free_.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat("CUDA KV cache: all ", n_blocks(), " blocks in use"));
  }
  const int32_t b = free_.back();
  free_.pop_back();
  refs_[b] = 1;
  return b;
}

void CudaKvCache::Retain(int32_t block) {
  HR_CHECK(refs_[block] > 0, "Retain of a free block");
  ++refs_[block];
}

void CudaKvCache::Release(int32_t block) {
  HR_CHECK(refs_[block] > 0, "Release of a free block");
  if (--refs_[block] == 0) free_.push_back(block);
}

cuda::PagedKvLayer CudaKvCache::Layer(int64_t layer) const {
  const KvGeometry& g = geometry_;
  cuda::PagedKvLayer v;
  v.block_stride = 2 * g.n_kv_heads * chunk_size_ * g.head_dim;
  v.value_offset = g.n_kv_heads * chunk_size_ * g.head_dim;
  const cuda::DType dt = ToCudaDType(dtype_);
  v.d_base = kv_.as<char>() + layer * n_blocks() * v.block_stride * cuda::DTypeBytes(dt);
  v.chunk_size = chunk_size_;
  v.n_kv_heads = static_cast<int32_t>(g.n_kv_heads);
  v.head_dim = static_cast<int32_t>(g.head_dim);
  v.dtype = dt;
  return v;
}

cuda::SummaryStore CudaKvCache::Summaries(int64_t layer) const {
  const KvGeometry& g = geometry_;
  const int64_t nb = n_blocks();
  cuda::SummaryStore s;
  s.d_longheads = longheads_.as<float>() + layer * nb * g.n_heads * g.head_dim;
  s.d_bound = bound_.as<float>() + layer * nb * g.n_kv_heads * 2 * g.head_dim;
  s.d_mean = mean_.as<float>() + layer * nb * g.n_kv_heads * g.head_dim;
  return s;
}

}  // namespace hr
