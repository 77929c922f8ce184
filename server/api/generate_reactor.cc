#include "server/api/generate_reactor.h"

#include <utility>

#include "server/api/request_parsing.h"
#include "server/api/response_conversion.h"
#include "server/api/status_conversion.h"
#include "server/common/task_thread.h"
#include "server/scheduler/scheduler.h"

namespace hr::api {

std::shared_ptr<GenerateReactor> GenerateReactor::Create(std::string request_id, Scheduler* scheduler,
                                                         TaskThread* writer) {
  std::shared_ptr<GenerateReactor> reactor(new GenerateReactor(std::move(request_id), scheduler, writer));
  absl::MutexLock lock(&reactor->mu_);
  reactor->self_ = reactor;
  return reactor;
}

GenerateReactor::GenerateReactor(std::string request_id, Scheduler* scheduler, TaskThread* writer)
    : request_id_(std::move(request_id)), scheduler_(scheduler), writer_(writer) {}

void GenerateReactor::Reject(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    engine_done_ = true;
    EndLocked(status);
  }
  Pump();
}

void GenerateReactor::MarkSubmitted() {
  bool cancel = false;
  {
    absl::MutexLock lock(&mu_);
    submitted_ = true;
    cancel = aborted_ && !engine_done_;
  }
  if (cancel) CancelInScheduler();
}

void GenerateReactor::OnPrefillProgress(int64_t processed, int64_t total, int64_t cached) {
  {
    absl::MutexLock lock(&mu_);
    if (end_) return;
    if (queue_.empty() || !queue_.back().has_progress()) {
      queue_.emplace_back().set_request_id(request_id_);
    }
    headroom::v1::PrefillProgress* p = queue_.back().mutable_progress();  // keeps the latest
    p->set_processed_tokens(processed);
    p->set_total_tokens(total);
    p->set_cached_tokens(cached);
  }
  PumpFromSink();
}

void GenerateReactor::OnTokens(TokenEvent event) {
  {
    absl::MutexLock lock(&mu_);
    if (end_) return;
    if (queue_.empty() || !queue_.back().has_delta()) {
      queue_.emplace_back().set_request_id(request_id_);
    }
    AppendTokens(event, queue_.back().mutable_delta());  // coalesces with a queued delta
  }
  PumpFromSink();
}

void GenerateReactor::OnPromptLogprobs(int64_t first_position, std::vector<float> logprobs) {
  {
    absl::MutexLock lock(&mu_);
    if (end_) return;
    // Coalesces with a queued (contiguous) PromptLogprobs event.
    if (queue_.empty() || !queue_.back().has_prompt_logprobs()) {
      headroom::v1::GenerateResponse& r = queue_.emplace_back();
      r.set_request_id(request_id_);
      r.mutable_prompt_logprobs()->set_first_position(first_position);
    }
    auto* out = queue_.back().mutable_prompt_logprobs()->mutable_logprobs();
    out->Add(logprobs.begin(), logprobs.end());
  }
  PumpFromSink();
}

void GenerateReactor::OnFinish(const FinishEvent& finish) {
  {
    absl::MutexLock lock(&mu_);
    engine_done_ = true;
    if (end_) return;
    headroom::v1::GenerateResponse& last = queue_.emplace_back();
    last.set_request_id(request_id_);
    ToProto(finish, last.mutable_finished());
    EndLocked(absl::OkStatus());
  }
  PumpFromSink();
}

void GenerateReactor::OnError(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    engine_done_ = true;
    EndLocked(status);
  }
  PumpFromSink();
}

void GenerateReactor::OnWriteDone(bool ok) {
  bool cancel = false;
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!ok) cancel = AbortLocked();  // the stream is broken (client gone)
  }
  if (cancel) CancelInScheduler();
  Pump();
}

void GenerateReactor::OnCancel() {
  bool cancel = false;
  {
    absl::MutexLock lock(&mu_);
    cancel = AbortLocked();
  }
  if (cancel) CancelInScheduler();
  Pump();
}

void GenerateReactor::OnDone() {
  std::shared_ptr<GenerateReactor> last_reference;
  {
    absl::MutexLock lock(&mu_);
    last_reference = std::move(self_);
  }
  // `this` may be destroyed when `last_reference` goes out of scope.
}

void GenerateReactor::EndLocked(const absl::Status& status) {
  if (!end_) end_ = status;
}

bool GenerateReactor::AbortLocked() {
  if (aborted_) return false;
  aborted_ = true;
  queue_.clear();
  end_ = absl::CancelledError("the call was cancelled");
  return submitted_ && !engine_done_;
}

void GenerateReactor::Pump() {
  bool write = false;
  grpc::Status finish;
  {
    absl::MutexLock lock(&mu_);
    if (write_in_flight_ || finish_started_) return;
    if (!queue_.empty()) {
      write_buffer_ = SerializeToByteBuffer(queue_.front());
      queue_.pop_front();
      write_in_flight_ = true;
      write = true;
    } else if (end_) {
      finish_started_ = true;
      finish = ToGrpcStatus(*end_);
    } else {
      return;
    }
  }
  if (write) {
    StartWrite(&write_buffer_);
  } else {
    Finish(finish);
  }
}

void GenerateReactor::PumpFromSink() {
  if (writer_ == nullptr) {
    Pump();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (posted_ || write_in_flight_ || finish_started_) return;
    posted_ = true;
  }
  writer_->Post([self = shared_from_this()] {
    {
      absl::MutexLock lock(&self->mu_);
      self->posted_ = false;
    }
    self->Pump();
  });
}

void GenerateReactor::CancelInScheduler() {
  // NOT_FOUND when the request ended meanwhile: nothing left to free.
  (void)scheduler_->Cancel(request_id_);
}

}  // namespace hr::api
