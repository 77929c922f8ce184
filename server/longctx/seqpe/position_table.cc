#include "server/longctx/seqpe/position_table.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "server/common/status.h"

namespace hr {

PositionTable::PositionTable(const PositionEncoder* encoder, const Linear* projection)
    : encoder_(encoder),
      projection_(projection),
      width_(projection != nullptr ? projection->out() : encoder->config().out_dim),
      budget_(encoder->config().PositionBudget()) {
  HR_CHECK(projection == nullptr || projection->in() == encoder->config().out_dim,
           "PositionTable: projection input width differs from the encoder's out_dim");
  const int64_t cap = std::min(budget_, kMaxPositions);
  blocks_.resize(static_cast<size_t>((cap + kRowsPerBlock - 1) / kRowsPerBlock));
}

absl::Status PositionTable::Ensure(int64_t n_positions) {
  if (n_positions <= rows_ready()) return absl::OkStatus();
  if (n_positions > budget_) {
    return absl::OutOfRangeError(absl::StrCat(
        "SeqPE positions 0 .. ", n_positions - 1, " requested, but the position encoder's ",
        encoder_->config().max_digits, " base-", encoder_->config().base, " digits represent only ",
        budget_, " positions (0 .. ", budget_ - 1, ")"));
  }
  if (n_positions > kMaxPositions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "SeqPE position table: ", n_positions, " positions exceed its cap of ", kMaxPositions));
  }
  absl::MutexLock lock(&mu_);
  int64_t ready = rows_ready_.load(std::memory_order_relaxed);
  if (n_positions <= ready) return absl::OkStatus();  // another thread encoded them
  const auto start = std::chrono::steady_clock::now();
  const int64_t out_dim = encoder_->config().out_dim;
  std::vector<int64_t> positions;
  std::vector<float> pe;
  while (ready < n_positions) {
    // `ready` is always a multiple of kRowsPerBlock, except at the budget.
    const int64_t block = ready / kRowsPerBlock;
    const int64_t first = block * kRowsPerBlock;
    const int64_t n = std::min(kRowsPerBlock, std::min(budget_, kMaxPositions) - first);
    positions.resize(n);
    std::iota(positions.begin(), positions.end(), first);
    auto rows = std::make_unique<float[]>(static_cast<size_t>(kRowsPerBlock * width_));
    if (projection_ == nullptr) {
      HR_RETURN_IF_ERROR(encoder_->Encode(positions, rows.get()));
    } else {
      pe.resize(n * out_dim);
      HR_RETURN_IF_ERROR(encoder_->Encode(positions, pe.data()));
      ApplyLinear(*projection_, pe.data(), n, rows.get());
    }
    blocks_[block] = std::move(rows);
    ready = first + n;
    stats_.positions_encoded += n;
    rows_ready_.store(ready, std::memory_order_release);
  }
  stats_.encode_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats_.bytes = ready * width_ * static_cast<int64_t>(sizeof(float));
  return absl::OkStatus();
}

PositionTableStats PositionTable::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace hr
