#include "server/scheduler/scheduler.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace hr {

// Forwards a request's events to the caller's sink and forgets the request
// when its last event has gone out.
class Scheduler::TrackingSink : public RequestSink {
 public:
  TrackingSink(Scheduler* scheduler, std::string id, std::shared_ptr<RequestSink> sink)
      : scheduler_(scheduler), id_(std::move(id)), sink_(std::move(sink)) {}
  void OnPrefillProgress(int64_t processed, int64_t total, int64_t cached) override {
    sink_->OnPrefillProgress(processed, total, cached);
  }
  void OnTokens(TokenEvent event) override { sink_->OnTokens(std::move(event)); }
  void OnPromptLogprobs(int64_t first_position, std::vector<float> logprobs) override {
    sink_->OnPromptLogprobs(first_position, std::move(logprobs));
  }
  // The id is free again before the client can see the end, so it may be
  // reused at once.
  void OnFinish(const FinishEvent& finish) override {
    scheduler_->Forget(id_);
    sink_->OnFinish(finish);
  }
  void OnError(const absl::Status& status) override {
    scheduler_->Forget(id_);
    sink_->OnError(status);
  }

 private:
  Scheduler* const scheduler_;
  const std::string id_;
  const std::shared_ptr<RequestSink> sink_;
};

Scheduler::Scheduler(std::vector<Worker*> workers, const SchedulerOptions& options,
                     ServerMetrics* metrics)
    : workers_(std::move(workers)), options_(options), metrics_(metrics) {}

Scheduler::~Scheduler() = default;

absl::Status Scheduler::Submit(RequestSpec spec, std::shared_ptr<RequestSink> sink) {
  absl::MutexLock lock(&mu_);
  if (draining_) return absl::UnavailableError("the server is draining and accepts no new requests");
  if (spec.id.empty()) spec.id = absl::StrCat("headroom-", ++next_id_);
  if (live_.contains(spec.id)) {
    return absl::AlreadyExistsError(absl::StrCat("request_id \"", spec.id, "\" is already running"));
  }
  int64_t waiting = 0;
  for (const Worker* w : workers_) waiting += w->GetLoad().waiting;
  if (waiting >= options_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrCat("the queue is full: ", waiting,
                                                     " requests waiting, limit ", options_.max_queue));
  }
  Worker* worker = Place(spec);
  if (worker == nullptr) {  // why no worker can take it
    int64_t largest = 0;  // of the workers still serving
    bool lost_fits = false;
    for (const Worker* w : workers_) {
      if (!w->lost()) {
        largest = std::max(largest, w->budget_bytes());
      } else if (w->BytesNeeded(spec) <= w->budget_bytes()) {
        lost_fits = true;
      }
    }
    if (largest == 0) {
      return absl::UnavailableError(
          "every worker has lost its device: this server serves no request until it restarts");
    }
    if (lost_fits) {
      return absl::UnavailableError(
          "every worker whose KV cache can hold the request has lost its device: the server needs a restart");
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request can never fit in the KV cache: prompt + max_tokens need ",
        workers_.front()->BytesNeeded(spec), " bytes, the largest worker's cache holds ", largest));
  }
  const std::string id = spec.id;
  auto request = std::make_shared<Request>(
      std::move(spec), std::make_shared<TrackingSink>(this, id, std::move(sink)), absl::Now());
  live_.emplace(id, Live{request, worker});
  worker->Enqueue(std::move(request));
  return absl::OkStatus();
}

Worker* Scheduler::Place(const RequestSpec& spec) const {
  Worker* best = nullptr;
  int64_t best_cached = 0;
  std::vector<Worker*> serving;  // not lost, and with a cache that can hold the request
  for (Worker* w : workers_) {
    if (!w->lost() && w->BytesNeeded(spec) <= w->budget_bytes()) serving.push_back(w);
  }
  for (Worker* w : serving) {
    const int64_t cached = w->CachedPrefixTokens(spec);
    if (cached > best_cached) {
      best = w;
      best_cached = cached;
    }
  }
  if (best != nullptr) return best;
  int64_t best_room = 0;
  for (Worker* w : serving) {
    const WorkerLoad load = w->GetLoad();
    const int64_t room = load.free_bytes - load.waiting_bytes;
    if (best == nullptr || room > best_room) {
      best = w;
      best_room = room;
    }
  }
  return best;
}

absl::Status Scheduler::Cancel(std::string_view id) {
  absl::MutexLock lock(&mu_);
  auto it = live_.find(std::string(id));
  if (it == live_.end()) {
    return absl::NotFoundError(absl::StrCat("no running request has request_id \"", std::string(id), "\""));
  }
  it->second.request->Cancel(absl::StatusCode::kCancelled);
  it->second.worker->Wake();
  return absl::OkStatus();
}

void Scheduler::Forget(const std::string& id) {
  absl::MutexLock lock(&mu_);
  live_.erase(id);
}

int Scheduler::Drain(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_.empty(); };
  if (mu_.AwaitWithTimeout(absl::Condition(&idle), timeout)) return 0;
  int stopped = 0;
  for (auto& [id, live] : live_) {
    live.request->Cancel(absl::StatusCode::kUnavailable);
    live.worker->Wake();
    ++stopped;
  }
  mu_.Await(absl::Condition(&idle));  // each ends at its worker's next step
  return stopped;
}

bool Scheduler::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

std::vector<Scheduler::WorkerStatus> Scheduler::worker_status() const {
  std::vector<WorkerStatus> out;
  for (const Worker* w : workers_) out.push_back({w->index(), w->device(), w->budget_bytes(), w->lost()});
  return out;
}

int64_t Scheduler::live_requests() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(live_.size());
}

}  // namespace hr
