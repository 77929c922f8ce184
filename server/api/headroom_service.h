// The headroom.v1.Headroom service (proto/headroom/v1/headroom.proto) on
// gRPC's callback API.
//
//   Generate      parse and validate (request_conversion.h), Submit to the
//                 scheduler, stream through a GenerateReactor; a rejected
//                 request ends the stream with its status (validation:
//                 INVALID_ARGUMENT / OUT_OF_RANGE; Submit: RESOURCE_EXHAUSTED,
//                 ALREADY_EXISTS, UNAVAILABLE while draining or with every
//                 worker lost).
//   Tokenize      text -> ids and vocabulary pieces (INVALID_ARGUMENT: not UTF-8).
//   Detokenize    ids -> text (INVALID_ARGUMENT: an id outside the vocabulary).
//   GetModelInfo  model, long-context defaults (every field set), limits,
//                 and each worker: device, KV budget, whether it is lost.
//   Cancel        NOT_FOUND for an id that no live request has.
//
// Generate and Tokenize are registered as raw-bytes methods so that invalid
// UTF-8 in a string field is answered with INVALID_ARGUMENT naming the field
// (request_parsing.h) rather than gRPC's bare UNIMPLEMENTED.
//
// Metrics: every Generate request rejected here (validation or Submit) counts
// in ServerMetrics::RequestFailed(code); failures after a successful Submit
// are the engine's to count. Other methods are not generation requests and
// do not count.
//
// Thread-safety: methods run on gRPC threads concurrently; the service's own
// state is immutable after construction except the id counter and the
// draining flag (atomics).
// Ownership: borrows the tokenizer, scheduler, metrics and the streams'
// writer thread; they must outlive the grpc::Server the service is
// registered with (the writer also the workers: their last sink calls post
// to it).
#ifndef HEADROOM_SERVER_API_HEADROOM_SERVICE_H_
#define HEADROOM_SERVER_API_HEADROOM_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "headroom/v1/headroom.grpc.pb.h"
#include "server/api/request_conversion.h"
#include "server/model/config.h"
#include "server/model/tokenizer.h"

namespace hr {
class Scheduler;
class ServerMetrics;
class TaskThread;
}  // namespace hr

namespace hr::api {

// What GetModelInfo reports beyond the model and the limits.
struct ServiceInfo {
  std::string model_name;      // e.g. the model file's stem
  std::string server_version;  // e.g. "0.1.0"
  std::string backend = "cpu";
  int32_t workers = 1;
  std::string kv_dtype = "f32";
  int32_t max_queue = 256;
  int64_t kv_cache_bytes_per_worker = 0;
};

using HeadroomServiceBase = headroom::v1::Headroom::WithRawCallbackMethod_Generate<
    headroom::v1::Headroom::WithRawCallbackMethod_Tokenize<
        headroom::v1::Headroom::WithCallbackMethod_Detokenize<
            headroom::v1::Headroom::WithCallbackMethod_GetModelInfo<
                headroom::v1::Headroom::WithCallbackMethod_Cancel<
                    headroom::v1::Headroom::Service>>>>>;

class HeadroomService final : public HeadroomServiceBase {
 public:
  // REQUIRES: defaults.tokenizer non-null; defaults.long_context valid.
  // `stream_writer` (may be null) starts the Generate streams' writes
  // (GenerateReactor).
  HeadroomService(const ModelConfig& config, RequestDefaults defaults, ServiceInfo info,
                  Scheduler* scheduler, ServerMetrics* metrics, TaskThread* stream_writer = nullptr);

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const headroom::v1::DetokenizeRequest* request,
                                       headroom::v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const headroom::v1::GetModelInfoRequest* request,
                                         headroom::v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context,
                                   const headroom::v1::CancelRequest* request,
                                   headroom::v1::CancelResponse* response) override;

  // From now on Generate answers UNAVAILABLE without reaching the scheduler
  // (call before turning health NOT_SERVING and Scheduler::Drain, so a
  // client that sees NOT_SERVING can rely on it).
  void BeginDrain() { draining_.store(true, std::memory_order_release); }

  const headroom::v1::ModelInfo& model_info() const { return model_info_; }

 private:
  // A server-assigned id: "hr-<boot nonce>-<counter>", so it cannot collide
  // with another server-assigned id.
  std::string NewRequestId();

  const RequestDefaults defaults_;
  Scheduler* const scheduler_;
  ServerMetrics* const metrics_;
  TaskThread* const stream_writer_;
  headroom::v1::ModelInfo model_info_;
  const std::string id_prefix_;
  std::atomic<uint64_t> next_id_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace hr::api

#endif  // HEADROOM_SERVER_API_HEADROOM_SERVICE_H_
