// Where a Forward() batch's tokens and logits go: the layout every model
// (LLaMA, SeqPE) uses for a span of BatchEntry.
//
// Thread-safety: pure functions.
#ifndef HEADROOM_SERVER_MODEL_BATCH_LAYOUT_H_
#define HEADROOM_SERVER_MODEL_BATCH_LAYOUT_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/causal_lm.h"

namespace hr {

struct BatchLayout {
  std::vector<int64_t> offset;  // entry e owns token rows [offset[e], offset[e + 1])
  int64_t n_tokens = 0;         // offset.back()
  int64_t n_logit_rows = 0;     // all tokens of all_logits entries, else one per entry
  int64_t max_end = 0;          // the largest length() + tokens over the entries
};

// INVALID_ARGUMENT for an entry without tokens or sequence, or a token id
// outside [0, vocab_size).
absl::StatusOr<BatchLayout> LayOutBatch(std::span<const BatchEntry> batch, int64_t vocab_size);

// Copies the rows whose logits were asked for (every row of all_logits
// entries, else each entry's last) from `x` ([n_tokens][dim]) to `out`
// ([n_logit_rows][dim]), entry by entry.
void GatherLogitRows(std::span<const BatchEntry> batch, const BatchLayout& layout, const float* x,
                     int64_t dim, float* out);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_BATCH_LAYOUT_H_
