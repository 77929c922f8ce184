#include "server/backend_cuda/cuda_sequence.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "server/backend_cuda/cuda_kv_cache.h"
#include "server/common/status.h"

namespace hr {

absl::StatusOr<std::unique_ptr<CudaSequence>> CudaSequence::Create(CudaKvCache* cache,
                                                                   const LongContextParams& params,
                                                                   int64_t capacity_tokens) {
  std::unique_ptr<CudaSequence> seq(new CudaSequence(cache, params, capacity_tokens));
  const int64_t max_chunks = (capacity_tokens + params.chunk_size - 1) / params.chunk_size;
  HR_RETURN_IF_ERROR(seq->block_table_.Reserve(max_chunks * int64_t{4}));
  if (seq->keeps_chunk_queries_) {
    const KvGeometry& g = cache->geometry();
    HR_RETURN_IF_ERROR(
        seq->chunk_queries_.Reserve(g.n_layers * g.n_heads * params.chunk_size * g.head_dim * int64_t{4}));
  }
  seq->blocks_.reserve(max_chunks);
  return seq;
}

CudaSequence::CudaSequence(CudaKvCache* cache, const LongContextParams& params, int64_t capacity_tokens)
    : cache_(cache),
      params_(params),
      capacity_tokens_(capacity_tokens),
      keeps_chunk_queries_(params.policy == AttentionPolicy::kLongHeads &&
                           params.summary == SummaryKind::kLongHeads) {}

CudaSequence::~CudaSequence() {
  for (int32_t b : blocks_) cache_->Release(b);
}

absl::Status CudaSequence::Reserve(int64_t n_tokens, cuda::Stream stream) {
  if (length_ + n_tokens > capacity_tokens_) {
    return absl::ResourceExhaustedError(absl::StrCat("sequence of ", length_, " tokens cannot take ", n_tokens,
                                                     " more: capacity ", capacity_tokens_));
  }
  const int64_t w = params_.chunk_size;
  const int64_t need = (length_ + n_tokens + w - 1) / w;
  absl::Status status;
  while (status.ok() && static_cast<int64_t>(blocks_.size()) < need) {
    absl::StatusOr<int32_t> b = cache_->Allocate();
    if (b.ok()) {
      blocks_.push_back(*b);
    } else {
      status = b.status();
    }
  }
  // Blocks taken before a failure are copied too: they stay for the retry.
  // Adopted blocks are copied with the first new ones.
  const size_t first = blocks_on_device_;
  if (blocks_.size() > first) {
    if (cudaMemcpyAsync(block_table_.as<int32_t>() + first, blocks_.data() + first,
                        (blocks_.size() - first) * sizeof(int32_t), cudaMemcpyHostToDevice,
                        static_cast<cudaStream_t>(stream)) != cudaSuccess) {
      return absl::InternalError("block table copy to the device failed");
    }
    blocks_on_device_ = blocks_.size();
  }
  return status;
}

void CudaSequence::AdoptPrefix(std::span<const int32_t> blocks) {
  HR_CHECK(length_ == 0 && blocks_.empty(), "AdoptPrefix needs an empty sequence");
  const int64_t tokens = static_cast<int64_t>(blocks.size()) * params_.chunk_size;
  HR_CHECK(tokens <= capacity_tokens_, "adopted prefix past the sequence's capacity");
  for (int32_t b : blocks) {
    cache_->Retain(b);
    blocks_.push_back(b);
  }
  length_ = tokens;
}

float* CudaSequence::d_chunk_queries(int64_t layer) const {
  const KvGeometry& g = cache_->geometry();
  return chunk_queries_.as<float>() + layer * g.n_heads * params_.chunk_size * g.head_dim;
}

}  // namespace hr
