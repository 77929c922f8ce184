// One sequence's state on the device: its blocks in the model's CUDA KV
// cache (host list and device block table), its long-context parameters and,
// for the `longheads` summary, the local-RoPE queries of its current partial
// chunk per layer (the summary of a chunk needs all its queries).
//
// Created by CudaLlamaModel::NewSequence and advanced by its Forward; the
// semantics per policy are hr::PagedSequence's (server/longctx/paged_sequence.h).
//
// Thread-safety: one thread at a time (the worker that owns the model).
// Ownership: borrows the model's cache (the sequence must be destroyed first);
// holds one reference on each of its blocks and releases them on destruction.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_CUDA_SEQUENCE_H_
#define HEADROOM_SERVER_BACKEND_CUDA_CUDA_SEQUENCE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/backend_cuda/device_buffer.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_kv_sequence.h"

namespace hr {

class CudaKvCache;

class CudaSequence {
 public:
  // REQUIRES: params valid with params.chunk_size == cache->chunk_size(),
  // capacity_tokens > 0 (CudaLlamaModel::NewSequence checks).
  static absl::StatusOr<std::unique_ptr<CudaSequence>> Create(CudaKvCache* cache,
                                                              const LongContextParams& params,
                                                              int64_t capacity_tokens);
  ~CudaSequence();
  CudaSequence(const CudaSequence&) = delete;
  CudaSequence& operator=(const CudaSequence&) = delete;

  // Tokens whose K/V are stored in every layer.
  int64_t length() const { return length_; }
  int64_t capacity_tokens() const { return capacity_tokens_; }
  const LongContextParams& params() const { return params_; }
  const std::vector<int32_t>& blocks() const { return blocks_; }  // block of chunk i
  const CudaKvCache* cache() const { return cache_; }

  // Blocks for positions length() .. length()+n_tokens-1, taken as needed
  // and copied to the device table on `stream` (a cudaStream_t; kernels
  // reading the table must follow on it). RESOURCE_EXHAUSTED past the
  // capacity or when the cache is full; blocks already taken stay for a retry.
  absl::Status Reserve(int64_t n_tokens, cuda::Stream stream);
  // Makes `n_tokens` reserved and written tokens part of length().
  void Commit(int64_t n_tokens) { length_ += n_tokens; }

  // Starts the sequence from complete chunks other sequences of this cache
  // computed with the same parameters (the prefix cache; the rules of
  // hr::PagedKvSequence::AdoptPrefix): a reference on each block; the device
  // table gets them at the next Reserve().
  // REQUIRES: length() == 0, no blocks, blocks.size() · chunk_size <=
  // capacity_tokens().
  void AdoptPrefix(std::span<const int32_t> blocks);

  // Work counters (hr::PagedSequenceStats), advanced by RunAttentionStep.
  const PagedSequenceStats& stats() const { return stats_; }
  PagedSequenceStats& mutable_stats() { return stats_; }

  // Device [max_chunks] chunk -> block.
  const int32_t* d_block_table() const { return block_table_.as<int32_t>(); }
  // Whether the `longheads` chunk summary is built (and so chunk queries kept).
  bool keeps_chunk_queries() const { return keeps_chunk_queries_; }
  // Device [n_heads][chunk_size][head_dim] local-RoPE queries of the current
  // partial chunk for `layer`. REQUIRES: keeps_chunk_queries().
  float* d_chunk_queries(int64_t layer) const;

 private:
  CudaSequence(CudaKvCache* cache, const LongContextParams& params, int64_t capacity_tokens);

  CudaKvCache* const cache_;
  const LongContextParams params_;
  const int64_t capacity_tokens_;
  const bool keeps_chunk_queries_;
  int64_t length_ = 0;
  std::vector<int32_t> blocks_;
  size_t blocks_on_device_ = 0;  // leading blocks_ entries copied to block_table_
  PagedSequenceStats stats_;
  DeviceBuffer block_table_;    // int32 [max_chunks]
  DeviceBuffer chunk_queries_;  // float [n_layers][n_heads][chunk_size][head_dim]
};

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_CUDA_SEQUENCE_H_
