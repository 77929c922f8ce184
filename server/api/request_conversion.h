// headroom.v1.GenerateRequest -> hr::RequestSpec, with every field checked
// (design.md §5).
//
// Errors:
//   INVALID_ARGUMENT  naming the proto field and the rule, e.g.
//                     "sampling.top_p must be in (0, 1], got 1.5": no input,
//                     empty text or ids, text not UTF-8, an id outside the
//                     vocabulary, bad sampling values, max_tokens outside
//                     1..limits.max_new_tokens, logprobs outside
//                     0..limits.max_logprobs, request_id too long, empty /
//                     too many / too long stop strings, unknown enum values,
//                     invalid long-context options (after the server's
//                     defaults are applied; LongContextParams::Validate);
//   OUT_OF_RANGE      the prompt has more tokens than limits.max_input_tokens
//                     (the message gives both numbers).
//
// Thread-safety: pure functions; RequestDefaults is immutable once built.
// Ownership: RequestDefaults borrows the tokenizer (it must outlive it).
#ifndef HEADROOM_SERVER_API_REQUEST_CONVERSION_H_
#define HEADROOM_SERVER_API_REQUEST_CONVERSION_H_

#include <chrono>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "headroom/v1/headroom.pb.h"
#include "server/engine/request.h"
#include "server/engine/served_model.h"
#include "server/longctx/long_context_params.h"
#include "server/model/tokenizer.h"

namespace hr::api {

// What the server accepts; GetModelInfo reports these.
struct ApiLimits {
  int64_t max_input_tokens = 131072;  // prompt tokens at most (OUT_OF_RANGE above)
  int32_t max_new_tokens = 4096;      // StopCriteria.max_tokens at most
  int32_t default_max_tokens = 256;   // when StopCriteria.max_tokens is unset
  int32_t max_logprobs = 20;          // GenerateRequest.logprobs at most
  int32_t max_stop_strings = 16;      // StopCriteria.stop_strings entries at most
  int32_t max_stop_string_bytes = 256;
  int32_t max_stop_token_ids = 256;   // StopCriteria.stop_token_ids entries at most
  int32_t max_request_id_bytes = 128;
};

// The server-side context a request is completed and checked against.
struct RequestDefaults {
  const Tokenizer* tokenizer = nullptr;  // not owned; REQUIRES: non-null
  // Not owned; when set, checks the long-context options its family lacks
  // (ServedModel::CheckLongContext) against the request's longest sequence.
  const ServedModel* model = nullptr;
  LongContextParams long_context;        // the server's defaults (valid)
  ApiLimits limits;
};

// A validated spec. `spec.id` is the request's request_id as given (empty
// when the client left it to the server); `deadline` becomes spec.deadline.
absl::StatusOr<RequestSpec> ToRequestSpec(const headroom::v1::GenerateRequest& request,
                                          const RequestDefaults& defaults, absl::Time deadline);

// INVALID_ARGUMENT unless `id` is non-empty (when `allow_empty` is false)
// and at most `max_bytes` long. Used for Generate and Cancel.
absl::Status ValidateRequestId(const std::string& id, int32_t max_bytes, bool allow_empty);

// INVALID_ARGUMENT "<field>[i] = <id> is outside the vocabulary [0, n)" for
// the first id of `ids` outside [0, vocab_size).
absl::Status ValidateTokenIds(const google::protobuf::RepeatedField<int32_t>& ids,
                              int32_t vocab_size, const char* field);

// A gRPC deadline (ServerContext::deadline(); time_point::max() when none)
// as an absl::Time (InfiniteFuture when none).
absl::Time DeadlineFromGrpc(std::chrono::system_clock::time_point deadline);

// Proto enum -> core; REQUIRES: the value is valid and not UNSPECIFIED.
AttentionPolicy PolicyFromProto(headroom::v1::AttentionPolicy p);
SummaryKind SummaryKindFromProto(headroom::v1::SummaryKind k);
GqaSelection GqaSelectionFromProto(headroom::v1::GqaSelection g);
PrefillSelection PrefillSelectionFromProto(headroom::v1::PrefillSelection p);

}  // namespace hr::api

#endif  // HEADROOM_SERVER_API_REQUEST_CONVERSION_H_
