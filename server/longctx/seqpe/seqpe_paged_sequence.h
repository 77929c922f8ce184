// Long-context attention for SeqPE attn_scalar models over the paged KV
// cache: the chunk selection of LongHeads (server/longctx/paged_sequence.h,
// design.md §3) with the positional bias computed at SLOT positions.
//
// A query at absolute position p sits in chunk c = p / w at offset u = p % w.
// Its policy (full / window / longheads, chunk_selection.h) picks a list of
// chunks; the chunk in slot s holds its keys at window positions s·w + u'
// and the query sits at m = (slots used - 1)·w + u. Then, per head h,
//
//   logit(key u' of the chunk in slot s) = q_h·k_h / sqrt(head_dim)
//                                          + PositionBias(h, m, s·w + u')
//
// with pq, pk read from the model's position table at those window
// positions (server/model/seqpe/seqpe_attention.h). `full` puts every chunk
// at its own index (m = p), i.e. exactly SeqPeAttention. window and
// longheads never use a position past atten_length - 1, so a document may be
// longer than the position encoder's digit budget.
//
// Keys are stored as they are (SeqPE has no rotation), so the summaries
// (bound, mean, and the official longheads r_c with the raw chunk queries)
// are taken over raw keys and scored with the raw query, as for RoPE models.
// Summaries are built when a chunk completes, in prefill or decode.
// Selection is per token and per query head (SeqPE models here are MHA);
// prefill = chunk and GQA options are refused (UNIMPLEMENTED).
//
// Thread-safety: one thread at a time (the worker that owns the sequence);
// the position table is shared and thread-safe.
// Ownership: borrows the pool and the table (must outlive the sequence);
// holds references on its blocks and releases them on destruction.
#ifndef HEADROOM_SERVER_LONGCTX_SEQPE_SEQPE_PAGED_SEQUENCE_H_
#define HEADROOM_SERVER_LONGCTX_SEQPE_SEQPE_PAGED_SEQUENCE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_kv_sequence.h"
#include "server/longctx/seqpe/position_table.h"
#include "server/model/seqpe/seqpe_config.h"

namespace hr {

class SeqPePagedSequence : public PagedKvSequence {
 public:
  // INVALID_ARGUMENT for invalid params or a pool of another geometry
  // ({n_layers, n_heads, n_heads, head_dim}); UNIMPLEMENTED for input_add
  // models (their positions enter at the input, absolute) and for
  // prefill = chunk.
  static absl::StatusOr<std::unique_ptr<SeqPePagedSequence>> Create(const SeqPeConfig& config,
                                                                    const LongContextParams& params,
                                                                    BlockPool* pool,
                                                                    PositionTable* table);
  ~SeqPePagedSequence() override;

  int64_t length() const override { return length_; }
  absl::Status Forward(int layer, int64_t n_tokens, const float* q, const float* k, const float* v,
                       float* out) override;
  void Commit(int64_t n_tokens) override { length_ += n_tokens; }

  const std::vector<int32_t>& block_table() const override { return blocks_; }
  void AdoptPrefix(std::span<const int32_t> blocks) override;
  const PagedSequenceStats& stats() const override { return stats_; }
  void set_observer(SelectionObserver* observer) override { observer_ = observer; }

 private:
  SeqPePagedSequence(const SeqPeConfig& config, const LongContextParams& params, BlockPool* pool,
                     PositionTable* table);

  // Stores K/V of the new tokens, builds summaries of completed chunks.
  absl::Status Append(int layer, int64_t n_tokens, const float* q, const float* k, const float* v);

  const SeqPeConfig config_;
  const LongContextParams params_;
  BlockPool* const pool_;
  PositionTable* const table_;
  int64_t length_ = 0;
  std::vector<int32_t> blocks_;  // block of chunk i
  // Raw queries of the current partial chunk, [n_layers][n_heads][w][head_dim].
  std::vector<float> chunk_queries_;
  PagedSequenceStats stats_;
  SelectionObserver* observer_ = nullptr;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_SEQPE_SEQPE_PAGED_SEQUENCE_H_
