// A lazily grown cache of the per-position vectors a SeqPE model reads:
// row(p) = projection(PE(p)), or PE(p) itself when there is no projection.
// For the attn_scalar form the projection is the model's shared pe_qk, so
// row(p) = [pq(p) | pk(p)] (server/model/seqpe/seqpe_attention.h); for
// input_add it is PE(p), added to the token embedding.
//
// PE(p) is a pure function of p, so each position is encoded once, on first
// need, in blocks of kRowsPerBlock positions (one batched encoder call per
// block), and kept for the life of the table. Positions beyond the encoder's
// digit budget are refused (OUT_OF_RANGE), never wrapped.
//
// Cost, reported by stats(): positions encoded, seconds spent encoding, and
// the bytes the table holds (rows_ready × row_width × 4).
//
// Thread-safety: thread-safe. Ensure() may be called from any thread; one
// caller encodes the missing blocks while later callers needing them wait;
// callers whose rows are already present never block. Row(p) is lock-free:
// it may be called from any thread that has seen Ensure(n) with n > p return
// OK (in that thread, or in one that happens-before it, e.g. the worker that
// owns a sequence). Rows never move once written.
// Ownership: borrows the encoder and the projection, which must outlive the
// table.
#ifndef HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_TABLE_H_
#define HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_TABLE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/longctx/seqpe/position_encoder.h"
#include "server/model/seqpe/gpt2_layers.h"

namespace hr {

struct PositionTableStats {
  int64_t positions_encoded = 0;  // rows computed so far (== rows held)
  double encode_seconds = 0.0;    // wall time spent in the encoder and projection
  int64_t bytes = 0;              // memory held by rows
};

class PositionTable {
 public:
  static constexpr int64_t kRowsPerBlock = 256;
  // Positions a table holds at most, whatever the digit budget (about
  // 16.7 M; at 1536 floats a row that is 100 GB, far past any real use).
  static constexpr int64_t kMaxPositions = int64_t{1} << 24;

  // `projection` may be null (rows are PE(p)); otherwise REQUIRES
  // projection->in() == encoder->config().out_dim.
  PositionTable(const PositionEncoder* encoder, const Linear* projection);

  PositionTable(const PositionTable&) = delete;
  PositionTable& operator=(const PositionTable&) = delete;

  // Floats per row.
  int64_t row_width() const { return width_; }
  // Positions 0 .. budget()-1 can be encoded (the encoder's digit budget).
  int64_t budget() const { return budget_; }

  // Makes rows 0 .. n_positions-1 available. OUT_OF_RANGE (naming both
  // numbers) when n_positions exceeds budget(); RESOURCE_EXHAUSTED past
  // kMaxPositions. Whole blocks are encoded, clipped to the budget.
  absl::Status Ensure(int64_t n_positions) ABSL_LOCKS_EXCLUDED(mu_);

  // Row of `position`: row_width() floats.
  // REQUIRES: an Ensure(n) with n > position returned OK (see above).
  const float* Row(int64_t position) const {
    return blocks_[position / kRowsPerBlock].get() + (position % kRowsPerBlock) * width_;
  }

  // Rows available without encoding.
  int64_t rows_ready() const { return rows_ready_.load(std::memory_order_acquire); }

  PositionTableStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const PositionEncoder* const encoder_;
  const Linear* const projection_;
  const int64_t width_;
  const int64_t budget_;
  // One pointer per block, sized once (never reallocated, so Row() may read
  // it without the lock); entry b is written once, under mu_, before
  // rows_ready_ is released past it.
  std::vector<std::unique_ptr<float[]>> blocks_;
  std::atomic<int64_t> rows_ready_{0};

  mutable absl::Mutex mu_;
  PositionTableStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_SEQPE_POSITION_TABLE_H_
