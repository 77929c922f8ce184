// The front door of the engine: a bounded queue with priorities, placement
// of requests on workers, cancellation by id, and graceful drain.
//
// Submit() places a request on the worker whose prefix cache holds most of
// its prompt (when any does) or else on the one with the most free KV room,
// passing by workers that lost their device;
// that worker admits it in priority order when its KV cache allows.
//
// Errors (design.md §5):
//   RESOURCE_EXHAUSTED  max_queue requests already wait, or the request can
//                       never fit in any worker's KV cache (budgets may differ
//                       where each is sized from its GPU);
//   ALREADY_EXISTS      a live request has the same id;
//   UNAVAILABLE         the scheduler is draining, or every worker (or every
//                       one whose cache can hold the request) has lost its
//                       device (Worker::lost());
//   NOT_FOUND           Cancel() of an unknown id.
//
// Thread-safety: every method may be called from any thread.
// Ownership: borrows the workers (they must outlive the scheduler) and the
// metrics; shares each request with the worker running it.
#ifndef HEADROOM_SERVER_SCHEDULER_SCHEDULER_H_
#define HEADROOM_SERVER_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/request.h"
#include "server/engine/worker.h"

namespace hr {

class ServerMetrics;

struct SchedulerOptions {
  int32_t max_queue = 256;  // requests waiting (not yet admitted) at most
};

class Scheduler {
 public:
  Scheduler(std::vector<Worker*> workers, const SchedulerOptions& options,
            ServerMetrics* metrics);
  ~Scheduler();

  // On OK the sink receives the request's events until OnFinish / OnError.
  // On error the sink is never called.
  absl::Status Submit(RequestSpec spec, std::shared_ptr<RequestSink> sink);

  // Stops the request with CANCELLED at its worker's next step.
  absl::Status Cancel(std::string_view id);

  // Stops admitting (Submit answers UNAVAILABLE), waits up to `timeout` for
  // live requests to end, then stops the rest with UNAVAILABLE and waits for
  // them to end. Returns the number stopped that way.
  int Drain(absl::Duration timeout);

  bool draining() const;
  int64_t live_requests() const;
  // Each worker's index, device, KV budget and whether it is lost.
  struct WorkerStatus {
    int index = 0;
    std::string device;
    int64_t kv_cache_bytes = 0;
    bool lost = false;
  };
  std::vector<WorkerStatus> worker_status() const;

 private:
  class TrackingSink;
  struct Live {
    std::shared_ptr<Request> request;
    Worker* worker;
  };
  void Forget(const std::string& id);
  // Of the workers not lost whose cache can hold the request at its longest,
  // the one whose prefix cache holds most of the prompt, else the one with
  // the most free KV room after its queue; null when there is none.
  Worker* Place(const RequestSpec& spec) const;

  const std::vector<Worker*> workers_;
  const SchedulerOptions options_;
  ServerMetrics* const metrics_;
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, Live> live_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_SCHEDULER_SCHEDULER_H_
