// Which chunks a query reads, in slot order (design.md §3; the exact rules
// are in paged_sequence.h). Pure functions, shared by all backends.
#ifndef HEADROOM_SERVER_LONGCTX_CHUNK_SELECTION_H_
#define HEADROOM_SERVER_LONGCTX_CHUNK_SELECTION_H_

#include <cstdint>
#include <vector>

#include "server/longctx/long_context_params.h"

namespace hr {

// True when the policy needs chunk scores for a query in chunk `c`
// (longheads with more chunks than slots).
bool NeedsScores(const LongContextParams& params, int64_t c);

// Fills `chunks` with the chunk indices a query in chunk `c` reads, in
// order; chunk chunks[i] sits at slot i. `scores[j]` (j in 1 .. c-2) is read
// only when NeedsScores(params, c).
void SelectChunks(const LongContextParams& params, int64_t c, const float* scores,
                  std::vector<int32_t>* chunks);

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_CHUNK_SELECTION_H_
