// Holds back streamed text that might be the start of a stop string.
//
// Push() returns the text that is safe to emit: everything except a suffix
// that could still grow into a stop string. When a stop string appears, the
// text before it is returned, stopped() becomes true and later input is
// ignored. The stop string itself is never emitted.
//
// Thread-safety: per stream, not thread-safe.
#ifndef HEADROOM_SERVER_ENGINE_STOP_STRINGS_H_
#define HEADROOM_SERVER_ENGINE_STOP_STRINGS_H_

#include <string>
#include <string_view>
#include <vector>

namespace hr {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  std::string Push(std::string_view text);
  // The held-back text, at the end of the stream (empty once stopped).
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;  // non-empty strings only
  std::string held_;
  bool stopped_ = false;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_STOP_STRINGS_H_
