// Engine events and settings -> headroom.v1 response messages.
//
// Thread-safety: pure functions.
#ifndef HEADROOM_SERVER_API_RESPONSE_CONVERSION_H_
#define HEADROOM_SERVER_API_RESPONSE_CONVERSION_H_

#include "headroom/v1/headroom.pb.h"
#include "server/engine/request.h"
#include "server/longctx/long_context_params.h"

namespace hr::api {

// Appends the event's ids, text and logprobs to `delta`, so consecutive
// events coalesce into one message.
void AppendTokens(const TokenEvent& event, headroom::v1::TokenDelta* delta);

void ToProto(const FinishEvent& finish, headroom::v1::Finished* out);
headroom::v1::FinishReason ToProto(FinishReason reason);

// Every field set (no UNSPECIFIED, no 0).
void ToProto(const LongContextParams& params, headroom::v1::LongContextOptions* out);

}  // namespace hr::api

#endif  // HEADROOM_SERVER_API_RESPONSE_CONVERSION_H_
