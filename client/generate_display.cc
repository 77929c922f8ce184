#include "client/generate_display.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/request_builder.h"

namespace hr::client {

std::string FormatPrefillProgress(const headroom::v1::PrefillProgress& p, int bar_width) {
  bar_width = std::max(bar_width, 1);
  const double fraction =
      p.total_tokens() <= 0
          ? 1.0
          : std::clamp(static_cast<double>(p.processed_tokens()) / static_cast<double>(p.total_tokens()),
                       0.0, 1.0);
  const int filled = static_cast<int>(fraction * bar_width);
  std::string line = absl::StrFormat("prefill [%s%s] %3d%% %d/%d tokens", std::string(filled, '#'),
                                     std::string(bar_width - filled, '-'),
                                     static_cast<int>(fraction * 100.0), p.processed_tokens(),
                                     p.total_tokens());
  if (p.cached_tokens() > 0) absl::StrAppend(&line, " (", p.cached_tokens(), " cached)");
  return line;
}

std::string FormatGenerateSummary(const headroom::v1::Finished& f, const ClientTimings& t) {
  const headroom::v1::Usage& u = f.usage();
  std::string line = absl::StrFormat("[prompt %d tokens (%d cached), generated %d tokens",
                                     u.prompt_tokens(), u.cached_tokens(), u.generated_tokens());
  std::string timing;
  if (t.first_token_s >= 0.0) {
    absl::StrAppendFormat(&timing, "TTFT %.1f ms", t.first_token_s * 1e3);
    const double decode_s = t.end_s - t.first_token_s;
    if (u.generated_tokens() > 1 && decode_s > 0.0) {
      absl::StrAppendFormat(&timing, ", %.1f tokens/s",
                            static_cast<double>(u.generated_tokens() - 1) / decode_s);
    }
  }
  if (!timing.empty()) absl::StrAppend(&line, "; ", timing);
  absl::StrAppend(&line, "; finish: ", FinishReasonName(f.reason()), "]");
  return line;
}

}  // namespace hr::client
