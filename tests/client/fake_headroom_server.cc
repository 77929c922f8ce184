// fake-headroom-server: a scripted headroom.v1 server for the client tests,
// so the C++ library, the CLI and the Python client are tested end to end
// without a model. It follows headroom-server's process contract
// (tests/util/server_process.h): `--grpc_address HOST:PORT` (port 0 picks
// one), one "headroom-server: serving grpc=HOST:PORT metrics=HOST:0" line
// when ready, drain and exit 0 on SIGTERM; and it serves grpc.health.v1.
//
// Its "model" (deterministic, so tests can state exact expectations):
// - tokens: a word (whitespace-separated) is one token, id 3 + (sum of its
//   bytes) % 509, piece "▁word"; text input gets BOS (id 1) unless add_bos
//   is false. Detokenize writes each id as "<id>" joined by spaces.
// - Generate: INVALID_ARGUMENT "input is empty" for no input. Prefill
//   progress in steps of 4 prompt tokens, then max_tokens (default 8)
//   tokens, token i having id 100 + i and text " w<i>", sent as deltas of 1,
//   then 2, 2, ... tokens. A stop string equal to a token's text ends
//   generation before that token (STOP_STRING); else LENGTH. logprobs N
//   gives every token logprob -1 and N alternatives. Text "hang" blocks after
//   the progress event until the call is cancelled (client, deadline, or
//   Cancel with its request id).
// - Cancel: OK for a running request (it ends CANCELLED), NOT_FOUND else.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "headroom/v1/headroom.grpc.pb.h"

namespace {

namespace v1 = ::headroom::v1;

int32_t WordId(std::string_view word) {
  int sum = 0;
  for (unsigned char c : word) sum += c;
  return 3 + sum % 509;
}

std::vector<std::string> Words(const std::string& text) {
  return absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
}

class FakeHeadroom final : public v1::Headroom::Service {
 public:
  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    int64_t prompt = 0;
    if (request->has_tokens()) {
      prompt = request->tokens().ids_size();
    } else {
      prompt = static_cast<int64_t>(Words(request->text()).size());
      if (prompt > 0 && (!request->has_add_bos() || request->add_bos())) ++prompt;
    }
    if (prompt == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "input is empty");
    const std::string id = request->request_id().empty()
                               ? absl::StrCat("fake-", next_id_.fetch_add(1))
                               : request->request_id();
    const bool hang = request->text() == "hang";
    if (hang) {  // cancellable (by Cancel) from the first progress event on
      absl::MutexLock lock(&mu_);
      hanging_[id] = false;
    }
    v1::GenerateResponse r;
    r.set_request_id(id);
    for (int64_t done = std::min<int64_t>(4, prompt);; done = std::min<int64_t>(done + 4, prompt)) {
      v1::PrefillProgress* p = r.mutable_progress();
      p->set_processed_tokens(done);
      p->set_total_tokens(prompt);
      writer->Write(r);
      if (done == prompt) break;
    }
    if (hang) return Hang(context, id);

    const int32_t n = request->stop().has_max_tokens() ? request->stop().max_tokens() : 8;
    v1::FinishReason reason = v1::FINISH_REASON_LENGTH;
    int32_t generated = 0;
    r.clear_event();
    v1::TokenDelta* delta = r.mutable_delta();
    for (int32_t i = 0; i < n; ++i) {
      const std::string text = absl::StrCat(" w", i);
      bool stop = false;
      for (const std::string& s : request->stop().stop_strings()) stop = stop || s == text;
      if (stop) {
        reason = v1::FINISH_REASON_STOP_STRING;
        break;
      }
      delta->add_ids(100 + i);
      delta->mutable_text()->append(text);
      if (request->logprobs() > 0) {
        v1::TokenLogprob* lp = delta->add_logprobs();
        lp->set_id(100 + i);
        lp->set_logprob(-1.0f);
        for (int k = 0; k < request->logprobs(); ++k) {
          lp->add_top()->set_id(k);
          lp->mutable_top(k)->set_logprob(-2.0f);
        }
      }
      ++generated;
      if (i == 0 || delta->ids_size() == 2) {  // deltas of 1, 2, 2, ...
        writer->Write(r);
        delta->Clear();
      }
    }
    if (delta->ids_size() > 0) writer->Write(r);
    v1::Finished* f = r.mutable_finished();
    f->set_reason(reason);
    f->mutable_usage()->set_prompt_tokens(prompt);
    f->mutable_usage()->set_generated_tokens(generated);
    writer->Write(r);
    return grpc::Status::OK;
  }

  grpc::Status Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override {
    if (!request->has_add_bos() || request->add_bos()) {
      response->add_ids(1);
      response->add_pieces("<s>");
    }
    for (const std::string& w : Words(request->text())) {
      response->add_ids(WordId(w));
      response->add_pieces("\xe2\x96\x81" + w);
    }
    return grpc::Status::OK;
  }

  grpc::Status Detokenize(grpc::ServerContext*, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override {
    response->set_text(absl::StrJoin(request->ids(), " ", [](std::string* out, int32_t id) {
      absl::StrAppend(out, "<", id, ">");
    }));
    return grpc::Status::OK;
  }

  grpc::Status GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*,
                            v1::ModelInfo* info) override {
    info->set_api_version("headroom.v1");
    info->set_server_version("fake");
    info->set_model_name("fake");
    info->set_architecture("llama");
    info->set_trained_context(256);
    info->set_vocab_size(512);
    info->set_n_layers(2);
    info->set_n_heads(4);
    info->set_n_kv_heads(2);
    info->set_head_dim(8);
    info->set_bos_id(1);
    info->set_eos_id(2);
    info->set_backend("cpu");
    info->set_workers(1);
    info->set_kv_dtype("f32");
    v1::LongContextOptions* lc = info->mutable_long_context_defaults();
    lc->set_policy(v1::ATTENTION_POLICY_LONGHEADS);
    lc->set_chunk_size(32);
    lc->set_atten_length(256);
    lc->set_summary(v1::SUMMARY_KIND_BOUND);
    lc->set_gqa_selection(v1::GQA_SELECTION_QUERY_HEAD);
    lc->set_prefill_selection(v1::PREFILL_SELECTION_TOKEN);
    info->mutable_limits()->set_max_input_tokens(4096);
    info->mutable_limits()->set_max_new_tokens(1024);
    info->mutable_limits()->set_default_max_tokens(8);
    return grpc::Status::OK;
  }

  grpc::Status Cancel(grpc::ServerContext*, const v1::CancelRequest* request,
                      v1::CancelResponse*) override {
    absl::MutexLock lock(&mu_);
    auto it = hanging_.find(request->request_id());
    if (it == hanging_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("no request '", request->request_id(), "'"));
    }
    it->second = true;
    return grpc::Status::OK;
  }

 private:
  // REQUIRES: hanging_ has `id`.
  // Blocks until the client cancels (the sync API has no cancel callback,
  // so the context is checked every 5 ms) or Cancel names `id`.
  grpc::Status Hang(grpc::ServerContext* context, const std::string& id) {
    absl::MutexLock lock(&mu_);
    while (!hanging_[id] && !context->IsCancelled()) {
      mu_.AwaitWithTimeout(absl::Condition(&hanging_[id]), absl::Milliseconds(5));
    }
    hanging_.erase(id);
    return grpc::Status(grpc::StatusCode::CANCELLED, "request cancelled");
  }

  std::atomic<int64_t> next_id_{1};
  absl::Mutex mu_;
  std::map<std::string, bool> hanging_ ABSL_GUARDED_BY(mu_);  // id -> Cancel called
};

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:0";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--grpc_address") address = argv[i + 1];
  }
  // SIGTERM is taken by sigwait below; block it before gRPC starts threads.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  FakeHeadroom service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "fake-headroom-server: cannot listen on %s\n", address.c_str());
    return 1;
  }
  const std::string host = address.substr(0, address.rfind(':'));
  std::printf("headroom-server: serving grpc=%s:%d metrics=%s:0\n", host.c_str(), port, host.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&term, &sig);
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
