// absl::Status <-> grpc::Status. The canonical code numbers agree (both
// follow google.rpc.Code), so a conversion keeps the code and the message.
//
// Thread-safety: pure functions.
#ifndef HEADROOM_SERVER_API_STATUS_CONVERSION_H_
#define HEADROOM_SERVER_API_STATUS_CONVERSION_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace hr::api {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace hr::api

#endif  // HEADROOM_SERVER_API_STATUS_CONVERSION_H_
