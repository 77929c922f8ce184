// Parsing request messages from their wire bytes, with errors that name the
// offending field.
//
// Why: protobuf rejects a proto3 `string` field holding invalid UTF-8 while
// parsing, and gRPC's generated callback handlers then fail the call with a
// bare UNIMPLEMENTED. The service therefore receives Generate and Tokenize
// as raw bytes and parses them here, so a client that sends invalid UTF-8
// gets INVALID_ARGUMENT naming the field ("text is not valid UTF-8").
//
// Thread-safety: pure functions.
#ifndef HEADROOM_SERVER_API_REQUEST_PARSING_H_
#define HEADROOM_SERVER_API_REQUEST_PARSING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace hr::api {

// The bytes of `buffer`, concatenated.
std::string ByteBufferToString(const grpc::ByteBuffer& buffer);

// Parses `wire` into `out` (cleared first). INVALID_ARGUMENT:
//   "<field path> is not valid UTF-8" (e.g. "stop.stop_strings[1]") when a
//   string field holds invalid UTF-8, else "malformed <message type>".
absl::Status ParseRequest(std::string_view wire, google::protobuf::Message* out);

// `message` serialized into a fresh byte buffer.
grpc::ByteBuffer SerializeToByteBuffer(const google::protobuf::Message& message);

}  // namespace hr::api

#endif  // HEADROOM_SERVER_API_REQUEST_PARSING_H_
