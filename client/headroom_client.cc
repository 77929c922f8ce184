#include "client/headroom_client.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace hr::client {

namespace v1 = ::headroom::v1;

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

void CancelToken::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (grpc::ClientContext* context : active_) context->TryCancel();
}

bool CancelToken::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool CancelToken::Attach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return false;
  active_.push_back(context);
  return true;
}

void CancelToken::Detach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  active_.erase(std::remove(active_.begin(), active_.end(), context), active_.end());
}

CallOptions CallOptions::WithTimeout(absl::Duration timeout) {
  CallOptions options;
  if (timeout != absl::InfiniteDuration()) options.deadline = absl::Now() + timeout;
  return options;
}

// One call's context, configured from CallOptions and registered with the
// cancel token for the call's lifetime.
class ScopedCall {
 public:
  explicit ScopedCall(const CallOptions& options) : token_(options.cancel) {
    if (options.deadline != absl::InfiniteFuture()) {
      context_.set_deadline(absl::ToChronoTime(options.deadline));
    }
    context_.set_wait_for_ready(options.wait_for_ready);
    attached_ = token_ == nullptr || token_->Attach(&context_);
  }
  ~ScopedCall() {
    if (token_ != nullptr && attached_) token_->Detach(&context_);
  }
  ScopedCall(const ScopedCall&) = delete;
  ScopedCall& operator=(const ScopedCall&) = delete;

  // CANCELLED when the token was cancelled before the call started.
  absl::Status precondition() const {
    return attached_ ? absl::OkStatus() : absl::CancelledError("cancelled by the client");
  }
  grpc::ClientContext* context() { return &context_; }

 private:
  CancelToken* token_;
  bool attached_ = false;
  grpc::ClientContext context_;
};

namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  // Token lists of long documents exceed gRPC's 4 MiB default.
  args.SetMaxReceiveMessageSize(INT_MAX);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// Runs one unary RPC `method` of `stub` with `options`.
template <typename Response, typename Stub, typename Request, typename Method>
absl::StatusOr<Response> Unary(Stub* stub, Method method, const Request& request,
                               const CallOptions& options) {
  ScopedCall call(options);
  if (absl::Status s = call.precondition(); !s.ok()) return s;
  Response response;
  grpc::Status status = (stub->*method)(call.context(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace

HeadroomClient::HeadroomClient(const std::string& target) : HeadroomClient(MakeChannel(target)) {}

HeadroomClient::HeadroomClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      stub_(v1::Headroom::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

absl::StatusOr<GenerateResult> HeadroomClient::Generate(const v1::GenerateRequest& request,
                                                        const GenerateCallbacks& callbacks,
                                                        const CallOptions& options) const {
  ScopedCall call(options);
  if (absl::Status s = call.precondition(); !s.ok()) return s;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub_->Generate(call.context(), request);
  GenerateResult result;
  bool finished = false;
  bool extra_after_finish = false;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (finished) {  // keep reading so Finish() returns the real status
      extra_after_finish = true;
      continue;
    }
    if (result.request_id.empty()) result.request_id = response.request_id();
    if (callbacks.on_response) callbacks.on_response(response);
    switch (response.event_case()) {
      case v1::GenerateResponse::kProgress:
        if (callbacks.on_progress) callbacks.on_progress(response.progress());
        break;
      case v1::GenerateResponse::kPromptLogprobs:
        if (callbacks.on_prompt_logprobs) callbacks.on_prompt_logprobs(response.prompt_logprobs());
        break;
      case v1::GenerateResponse::kDelta:
        if (callbacks.on_delta) callbacks.on_delta(response.delta());
        break;
      case v1::GenerateResponse::kFinished:
        finished = true;
        result.finished = response.finished();
        if (callbacks.on_finished) callbacks.on_finished(response.finished());
        break;
      case v1::GenerateResponse::EVENT_NOT_SET:
        break;  // an event type newer than this client: skip it
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!finished) return absl::InternalError("Generate stream ended without a Finished event");
  if (extra_after_finish) return absl::InternalError("Generate stream continued after its Finished event");
  return result;
}

absl::StatusOr<v1::TokenizeResponse> HeadroomClient::Tokenize(const v1::TokenizeRequest& request,
                                                              const CallOptions& options) const {
  return Unary<v1::TokenizeResponse>(stub_.get(), &v1::Headroom::Stub::Tokenize, request, options);
}

absl::StatusOr<v1::DetokenizeResponse> HeadroomClient::Detokenize(
    const v1::DetokenizeRequest& request, const CallOptions& options) const {
  return Unary<v1::DetokenizeResponse>(stub_.get(), &v1::Headroom::Stub::Detokenize, request,
                                       options);
}

absl::StatusOr<v1::ModelInfo> HeadroomClient::GetModelInfo(const CallOptions& options) const {
  return Unary<v1::ModelInfo>(stub_.get(), &v1::Headroom::Stub::GetModelInfo,
                              v1::GetModelInfoRequest(), options);
}

absl::Status HeadroomClient::Cancel(const std::string& request_id, const CallOptions& options) const {
  v1::CancelRequest request;
  request.set_request_id(request_id);
  return Unary<v1::CancelResponse>(stub_.get(), &v1::Headroom::Stub::Cancel, request, options)
      .status();
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> HeadroomClient::Health(
    const CallOptions& options) const {
  grpc::health::v1::HealthCheckRequest request;  // service "": the whole server
  auto response = Unary<grpc::health::v1::HealthCheckResponse>(
      health_.get(), &grpc::health::v1::Health::Stub::Check, request, options);
  if (!response.ok()) return response.status();
  return response->status();
}

}  // namespace hr::client
