// A sequence's attention over the paged KV cache with a long-context policy.
//
// Implements SequenceAttention (server/model/sequence_attention.h): new keys
// are rotated by their offset inside their chunk and written to the
// sequence's blocks; when a chunk completes under the longheads policy, the
// summary kind it scores with is computed for every layer (blocks are shared
// only between sequences with the same parameters); each query then attends
// to the (chunk, slot) list its policy picks, with one query rotation per
// slot (design.md §3).
//
// Semantics (shared with the numpy reference in tests/reference/):
//   w = chunk_size, k = atten_length / w slots; a query at absolute position
//   p sits in chunk c = p / w at offset u = p % w.
//   full:      chunks 0..c at slots 0..c; query position m = p.
//   window:    if c < k as full; else [0, c-k+2, ..., c], m = (k-1)·w + u.
//   longheads: if c < k as full; else chunk 0, c-1 and c are kept and the
//              k-3 best-scoring chunks among 1..c-2 (ties: lower index)
//              fill the rest; the list keeps chunk order; m = (k-1)·w + u.
//   The chunk in slot s holds keys at positions s·w + u'; the query reads
//   keys up to and including itself. Every layer uses the policy.
//   GQA kv_head mode sums scores over the query heads of a group and shares
//   the selection; prefill chunk mode sums scores over the queries of one
//   chunk in the same Forward call and shares the selection.
//
// Deliberate differences from the official code (algorithms.md §1.4-1.5):
//   - the query's own key is read in prefill too (the official prefill drops
//     it, its decode keeps it), so prefill and decode agree;
//   - summaries are built whenever a chunk completes, in prefill or decode
//     (the official short-context decode path misses some and then fails);
//   - there is no dense prefix (begin_selective_length): while a sequence
//     has no more chunks than slots, selection is everything, i.e. exactly
//     full attention; RoPE theta and scaling come from the model config;
//   - GQA is supported (per query head, or per KV head).
//
// Memory: queries are scored one chunk at a time and attended in blocks of
// about kAttendBlockQueries, so the scratch of a Forward call is at most
// chunk_size × n_heads × n_chunks scores plus a block's chunk lists (linear
// in the context), whatever the number of tokens passed.
//
// Thread-safety: one thread at a time (the worker that owns the sequence).
// Ownership: borrows the pool (must outlive the sequence); holds references
// on its blocks and releases them on destruction.
#ifndef HEADROOM_SERVER_LONGCTX_PAGED_SEQUENCE_H_
#define HEADROOM_SERVER_LONGCTX_PAGED_SEQUENCE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu/rope.h"
#include "server/kvcache/block_pool.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_kv_sequence.h"
#include "server/model/config.h"

namespace hr {

class PagedSequence : public PagedKvSequence {
 public:
  // INVALID_ARGUMENT when `params` is invalid or the geometry does not match.
  static absl::StatusOr<std::unique_ptr<PagedSequence>> Create(const ModelConfig& config,
                                                               const LongContextParams& params,
                                                               BlockPool* pool);
  ~PagedSequence() override;

  int64_t length() const override { return length_; }
  absl::Status Forward(int layer, int64_t n_tokens, const float* q, const float* k,
                       const float* v, float* out) override;
  void Commit(int64_t n_tokens) override;

  void AdoptPrefix(std::span<const int32_t> blocks) override;

  // Benchmarks only: appends `n_tokens` positions of random keys, values and
  // queries (normal, std 1, from `seed`) for every layer through the same
  // storage and summary code as Forward, without running the model, so the
  // per-token cost of a forward step can be timed at a long context without
  // first paying for a long prefill. Commits them.
  absl::Status AppendSyntheticForBenchmark(int64_t n_tokens, uint64_t seed);

  const LongContextParams& params() const { return params_; }
  const std::vector<int32_t>& block_table() const override { return blocks_; }
  const PagedSequenceStats& stats() const override { return stats_; }
  void set_observer(SelectionObserver* observer) override { observer_ = observer; }

 private:
  PagedSequence(const ModelConfig& config, const LongContextParams& params, BlockPool* pool);

  // Step 1 of Forward: allocates blocks, writes local-RoPE keys and values of
  // n_tokens new positions, keeps local-RoPE queries in `q_local`
  // ([n_tokens][n_heads][head_dim]) and builds summaries of completed chunks.
  absl::Status Append(int layer, int64_t n_tokens, const float* q, const float* k, const float* v,
                      float* q_local);
  // Which chunks the new tokens i0 .. i1-1 (all in one chunk c) read, per
  // query and head.
  struct RangeSelection {
    int64_t i0 = 0, i1 = 0, c = 0;
    // Either one list per head shared by the range's queries ([H] lists) ...
    std::vector<std::vector<int32_t>> shared;
    // ... or `slots` chunks per (query, head): [(i - i0) · H + h][slots].
    std::vector<int32_t> own;
    int64_t slots = 0;
    int32_t n_heads = 0;  // H, the row stride of `own`
    // The list of query i (call index) and head h, in slot order.
    const int32_t* List(int64_t i, int64_t h, int64_t* len) const;
  };
  // Step 2a: chunk scores and selection for one chunk's queries (q raw).
  void SelectRange(int layer, int64_t i0, int64_t i1, const float* q, RangeSelection* sel);
  // Step 2b: attention of the queries of consecutive ranges over the union
  // of the chunks they read, one chunk at a time per head (q_local as from
  // Append).
  void AttendRanges(int layer, std::span<const RangeSelection> ranges, const float* q_local,
                    float* out);
  // The same for a single query (decode): one SlotAttention per head.
  void AttendOneQuery(int layer, const RangeSelection& r, const float* q_local, float* out);
  // Queries one attention pass covers at least (the union of their chunks is
  // read once per head): more queries, more reuse of each chunk read.
  static constexpr int64_t kAttendBlockQueries = 2048;
  // Writes chunk `chunk`'s summary of the scored kind into
  // score_rows_[layer] (longheads policy only).
  void SetScoreRows(int layer, int64_t chunk);
  // Score rows (c + 1 floats each) for the n queries i0.. (raw q) in chunk c:
  // row ScoreRowIndex(n, i, h) gets candidates j = 1 .. c-2 at [j]; one
  // matrix product per summary head.
  void ScoreCandidates(int layer, int64_t i0, int64_t n, int64_t c, const float* q,
                       float* scores) const;
  // Rows are grouped by summary head: [summary head][query][head in it].
  int64_t ScoreRowIndex(int64_t n, int64_t i, int64_t h) const;
  // Query heads per summary head (1 for the longheads summary, else the GQA group).
  int64_t SummaryHeadQueries() const;

  const ModelConfig config_;
  const LongContextParams params_;
  BlockPool* const pool_;
  const cpu::Rope rope_;
  // Query rotations by whole chunks, grown on demand outside parallel regions
  // (window and longheads never need more than slots() of them).
  cpu::RopeStepTable steps_;
  int64_t length_ = 0;
  std::vector<int32_t> blocks_;  // block of chunk i
  // Local-RoPE queries of the current partial chunk, per layer:
  // [n_layers][n_heads][chunk_size][head_dim] (only for the longheads
  // summary; empty otherwise).
  std::vector<float> chunk_queries_;
  // The scored summary of every complete chunk, contiguous per (layer,
  // summary head): [chunk][K] with K = 2·head_dim for bound (centre, then
  // radius: max(q·max, q·min) summed = q·centre + |q|·radius) and head_dim
  // otherwise; summary heads are query heads (longheads) or KV heads.
  std::vector<std::vector<std::vector<float>>> score_rows_;
  // Chunk scores of the current query range, [query][head][chunk] (reused
  // between calls: only candidate entries are ever read).
  std::vector<float> scores_;
  PagedSequenceStats stats_;
  SelectionObserver* observer_ = nullptr;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_PAGED_SEQUENCE_H_
