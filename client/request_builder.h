// Builds a headroom.v1 GenerateRequest from the command line's plain values
// (names as the flags spell them). Only the names of enum values are checked
// here; numeric ranges are the server's to check, so its INVALID_ARGUMENT
// message is the one users see.
#ifndef HEADROOM_CLIENT_REQUEST_BUILDER_H_
#define HEADROOM_CLIENT_REQUEST_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "headroom/v1/headroom.pb.h"

namespace hr::client {

// Every default leaves the field unset, i.e. the server's default.
struct GenerateFlags {
  int32_t max_tokens = 0;          // 0: the server's default_max_tokens
  float temperature = 0.0f;        // 0: greedy
  float top_p = 1.0f;              // 1: off (unset)
  int32_t top_k = 0;               // 0: off
  float min_p = 0.0f;              // 0: off
  float repetition_penalty = 1.0f;  // 1: off (unset)
  uint64_t seed = 0;
  std::vector<std::string> stop;   // stop strings
  bool ignore_eos = false;
  bool add_bos = true;             // text input only
  std::string policy;              // "" | full | window | longheads
  int32_t chunk_size = 0;          // 0: server default
  int32_t atten_length = 0;        // 0: server default
  std::string summary;             // "" | longheads | bound | mean
  std::string gqa_selection;       // "" | query_head | kv_head
  std::string prefill_selection;   // "" | token | chunk
  std::string priority;            // "" | low | normal | high
  std::string request_id;          // "": the server assigns one
  int32_t logprobs = 0;            // 0: off
};

// The request without its input (set text or tokens afterwards).
// INVALID_ARGUMENT naming the flag for an unknown enum value name.
absl::StatusOr<headroom::v1::GenerateRequest> BuildGenerateRequest(const GenerateFlags& flags);

// "length", "stop_token", "stop_string" ("unspecified" otherwise).
std::string FinishReasonName(headroom::v1::FinishReason reason);

}  // namespace hr::client

#endif  // HEADROOM_CLIENT_REQUEST_BUILDER_H_
