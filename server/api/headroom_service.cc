#include "server/api/headroom_service.h"

#include <cstdio>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/api/generate_reactor.h"
#include "server/api/request_parsing.h"
#include "server/api/response_conversion.h"
#include "server/api/status_conversion.h"
#include "server/metrics/server_metrics.h"
#include "server/scheduler/scheduler.h"

namespace hr::api {
namespace {

namespace pb = ::headroom::v1;

pb::ModelInfo BuildModelInfo(const ModelConfig& config, const RequestDefaults& d,
                             const ServiceInfo& info) {
  pb::ModelInfo m;
  m.set_api_version("headroom.v1");
  m.set_server_version(info.server_version);
  m.set_model_name(info.model_name);
  m.set_architecture(config.architecture);
  m.set_trained_context(config.trained_context);
  m.set_vocab_size(d.tokenizer->vocab_size());
  m.set_n_layers(static_cast<int32_t>(config.n_layers));
  m.set_n_heads(static_cast<int32_t>(config.n_heads));
  m.set_n_kv_heads(static_cast<int32_t>(config.n_kv_heads));
  m.set_head_dim(static_cast<int32_t>(config.head_dim));
  m.set_bos_id(d.tokenizer->bos_id());
  m.set_eos_id(d.tokenizer->eos_id());
  ToProto(d.long_context, m.mutable_long_context_defaults());
  pb::Limits* limits = m.mutable_limits();
  limits->set_max_input_tokens(d.limits.max_input_tokens);
  limits->set_max_new_tokens(d.limits.max_new_tokens);
  limits->set_default_max_tokens(d.limits.default_max_tokens);
  limits->set_max_queue(info.max_queue);
  limits->set_kv_cache_bytes_per_worker(info.kv_cache_bytes_per_worker);
  limits->set_max_logprobs(d.limits.max_logprobs);
  m.set_backend(info.backend);
  m.set_workers(info.workers);
  m.set_kv_dtype(info.kv_dtype);
  return m;
}

std::string BootNonce() {
  std::random_device rd;
  const uint64_t nonce = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return absl::StrFormat("hr-%016x-", nonce);
}

// A vocabulary piece as valid UTF-8 (a wire string must be): bytes that are
// not become <0xXX>.
std::string PrintablePiece(std::string piece) {
  if (IsValidUtf8(piece)) return piece;
  std::string out;
  for (unsigned char c : piece) absl::StrAppend(&out, absl::StrFormat("<0x%02X>", c));
  return out;
}

}  // namespace

HeadroomService::HeadroomService(const ModelConfig& config, RequestDefaults defaults,
                                 ServiceInfo info, Scheduler* scheduler, ServerMetrics* metrics,
                                 TaskThread* stream_writer)
    : defaults_(std::move(defaults)),
      scheduler_(scheduler),
      metrics_(metrics),
      stream_writer_(stream_writer),
      model_info_(BuildModelInfo(config, defaults_, info)),
      id_prefix_(BootNonce()) {}

std::string HeadroomService::NewRequestId() {
  return absl::StrCat(id_prefix_, next_id_.fetch_add(1, std::memory_order_relaxed));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* HeadroomService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  pb::GenerateRequest parsed;
  absl::Status status = ParseRequest(ByteBufferToString(*request), &parsed);
  absl::StatusOr<RequestSpec> spec =
      status.ok() ? ToRequestSpec(parsed, defaults_, DeadlineFromGrpc(context->deadline()))
                  : absl::StatusOr<RequestSpec>(status);
  if (spec.ok() && spec->id.empty()) spec->id = NewRequestId();
  std::shared_ptr<GenerateReactor> reactor =
      GenerateReactor::Create(spec.ok() ? spec->id : parsed.request_id(), scheduler_, stream_writer_);
  if (spec.ok() && draining_.load(std::memory_order_acquire)) {
    spec = absl::UnavailableError("the server is draining and accepts no new requests");
  }
  if (spec.ok()) {
    status = scheduler_->Submit(*std::move(spec), reactor);
    if (status.ok()) reactor->MarkSubmitted();
  } else {
    status = spec.status();
  }
  if (!status.ok()) {
    if (metrics_ != nullptr) metrics_->RequestFailed(status.code());
    reactor->Reject(status);
  }
  return reactor.get();  // alive until OnDone (and the engine's last call)
}

grpc::ServerUnaryReactor* HeadroomService::Tokenize(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  pb::TokenizeRequest parsed;
  absl::Status status = ParseRequest(ByteBufferToString(*request), &parsed);
  if (status.ok()) {
    auto ids = defaults_.tokenizer->Encode(parsed.text(),
                                           parsed.has_add_bos() ? parsed.add_bos() : true);
    if (ids.ok()) {
      pb::TokenizeResponse out;
      out.mutable_ids()->Add(ids->begin(), ids->end());
      for (int32_t id : *ids) out.add_pieces(PrintablePiece(defaults_.tokenizer->Piece(id)));
      *response = SerializeToByteBuffer(out);
    } else {
      status = absl::InvalidArgumentError(
          absl::StrCat("text: ", std::string(ids.status().message())));
    }
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* HeadroomService::Detokenize(grpc::CallbackServerContext* context,
                                                      const pb::DetokenizeRequest* request,
                                                      pb::DetokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status =
      ValidateTokenIds(request->ids(), defaults_.tokenizer->vocab_size(), "ids");
  if (status.ok()) {
    response->set_text(defaults_.tokenizer->Decode(
        std::vector<int32_t>(request->ids().begin(), request->ids().end())));
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* HeadroomService::GetModelInfo(grpc::CallbackServerContext* context,
                                                        const pb::GetModelInfoRequest* /*request*/,
                                                        pb::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  *response = model_info_;
  for (const Scheduler::WorkerStatus& w : scheduler_->worker_status()) {
    pb::WorkerInfo* info = response->add_worker();
    info->set_index(w.index);
    info->set_device(w.device);
    info->set_kv_cache_bytes(w.kv_cache_bytes);
    info->set_lost(w.lost);
    if (w.lost) response->set_workers_lost(response->workers_lost() + 1);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* HeadroomService::Cancel(grpc::CallbackServerContext* context,
                                                  const pb::CancelRequest* request,
                                                  pb::CancelResponse* /*response*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = ValidateRequestId(request->request_id(),
                                          defaults_.limits.max_request_id_bytes, false);
  if (status.ok()) status = scheduler_->Cancel(request->request_id());
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace hr::api
