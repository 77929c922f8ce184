// What `headroom generate` shows on stderr: the prefill progress bar and the
// closing one-line summary. Pure formatting (no I/O, no clock).
#ifndef HEADROOM_CLIENT_GENERATE_DISPLAY_H_
#define HEADROOM_CLIENT_GENERATE_DISPLAY_H_

#include <string>

#include "headroom/v1/headroom.pb.h"

namespace hr::client {

// One progress-bar line without a line end, e.g.
// "prefill [############------------]  40% 400/1000 tokens (100 cached)".
// `bar_width` >= 1 characters between the brackets; the fraction is
// clamped to [0, 1] (total 0 counts as done).
std::string FormatPrefillProgress(const headroom::v1::PrefillProgress& progress, int bar_width = 30);

// Client-side timings of one generation, in seconds after the request was
// sent; negative when the event never happened.
struct ClientTimings {
  double first_token_s = -1.0;  // first delta carrying a token
  double end_s = -1.0;          // stream end
};

// e.g. "[prompt 12 tokens (0 cached), generated 30 tokens; TTFT 12.3 ms,
// 245.1 tokens/s; finish: length]". tokens/s is the decode rate,
// (generated - 1) / (end - first token), left out when it is undefined.
std::string FormatGenerateSummary(const headroom::v1::Finished& finished, const ClientTimings& t);

}  // namespace hr::client

#endif  // HEADROOM_CLIENT_GENERATE_DISPLAY_H_
