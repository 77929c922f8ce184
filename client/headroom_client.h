// HeadroomClient: a blocking C++ client for the headroom.v1 API
// (proto/headroom/v1/headroom.proto) and the standard gRPC health check.
//
// Contract: every method performs one RPC and returns its outcome. A non-OK
// result carries the gRPC status code and message unchanged (FromGrpcStatus),
// so callers match on the codes of design.md §5 (INVALID_ARGUMENT,
// OUT_OF_RANGE, RESOURCE_EXHAUSTED, UNAVAILABLE, ...). Nothing throws.
//
// Thread-safety: a HeadroomClient is thread-safe. Any number of threads may
// call any of its methods at once; the calls share one channel (one HTTP/2
// connection, streams multiplexed). Generate's callbacks run on the calling
// thread, in stream order, one at a time. A CancelToken is thread-safe.
//
// Ownership: the client owns its channel; nothing a method returns refers to
// the client. CallOptions::cancel is borrowed for the duration of the call.
#ifndef HEADROOM_CLIENT_HEADROOM_CLIENT_H_
#define HEADROOM_CLIENT_HEADROOM_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "headroom/v1/headroom.grpc.pb.h"

namespace hr::client {

// The same code and message as an absl::Status (the code numbers agree).
absl::Status FromGrpcStatus(const grpc::Status& status);

// Cancels calls from another thread (or from inside a Generate callback).
// One token may serve several calls at once; Cancel() ends all of them with
// CANCELLED, and every later call made with the token fails at once with
// CANCELLED without reaching the server. Cancel() is idempotent.
class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel() ABSL_LOCKS_EXCLUDED(mu_);
  bool cancelled() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class ScopedCall;
  // False (and nothing registered) when already cancelled.
  bool Attach(grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach(grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<grpc::ClientContext*> active_ ABSL_GUARDED_BY(mu_);
};

struct CallOptions {
  // Absolute deadline; when it passes the call ends with DEADLINE_EXCEEDED
  // and the server stops its work. Default: none.
  absl::Time deadline = absl::InfiniteFuture();
  // Wait (until the deadline) for the server to become reachable instead of
  // failing at once with UNAVAILABLE. Default: false.
  bool wait_for_ready = false;
  // Optional; not owned, must outlive the call.
  CancelToken* cancel = nullptr;

  // CallOptions whose deadline is `timeout` from now (InfiniteDuration: none).
  static CallOptions WithTimeout(absl::Duration timeout);
};

// Generate's stream handlers; each may be empty. They must not block for
// long: the server coalesces deltas while the client reads slowly.
struct GenerateCallbacks {
  // Every message as received, before the typed handler below.
  std::function<void(const headroom::v1::GenerateResponse&)> on_response;
  std::function<void(const headroom::v1::PrefillProgress&)> on_progress;
  // Log-probabilities of prompt tokens (requests with prompt_logprobs), during
  // prefill, in position order.
  std::function<void(const headroom::v1::PromptLogprobs&)> on_prompt_logprobs;
  std::function<void(const headroom::v1::TokenDelta&)> on_delta;
  std::function<void(const headroom::v1::Finished&)> on_finished;
};

struct GenerateResult {
  std::string request_id;  // as echoed by the server (its own when none was sent)
  headroom::v1::Finished finished;
};

class HeadroomClient {
 public:
  // `target` is a gRPC target such as "127.0.0.1:50051" or "dns:///host:port"
  // (plaintext). Connects lazily: a bad or unreachable target shows as
  // UNAVAILABLE on the first call.
  explicit HeadroomClient(const std::string& target);
  // Uses an existing channel (e.g. an in-process one in tests).
  explicit HeadroomClient(std::shared_ptr<grpc::Channel> channel);

  // Streams one generation through `callbacks` and returns once the stream
  // ends: the Finished event, or the stream's status (CANCELLED after a
  // CancelToken or a server-side Cancel, DEADLINE_EXCEEDED, ...). INTERNAL
  // when the server breaks the protocol (no Finished event, or messages
  // after it).
  absl::StatusOr<GenerateResult> Generate(const headroom::v1::GenerateRequest& request,
                                          const GenerateCallbacks& callbacks,
                                          const CallOptions& options = {}) const;

  absl::StatusOr<headroom::v1::TokenizeResponse> Tokenize(
      const headroom::v1::TokenizeRequest& request, const CallOptions& options = {}) const;
  absl::StatusOr<headroom::v1::DetokenizeResponse> Detokenize(
      const headroom::v1::DetokenizeRequest& request, const CallOptions& options = {}) const;
  absl::StatusOr<headroom::v1::ModelInfo> GetModelInfo(const CallOptions& options = {}) const;
  // NOT_FOUND when the server runs no request with this id.
  absl::Status Cancel(const std::string& request_id, const CallOptions& options = {}) const;
  // grpc.health.v1.Health/Check for the whole server (service ""): SERVING,
  // or NOT_SERVING while it drains. A transport failure is an error status.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health(
      const CallOptions& options = {}) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<headroom::v1::Headroom::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace hr::client

#endif  // HEADROOM_CLIENT_HEADROOM_CLIENT_H_
