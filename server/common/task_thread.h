// One thread that runs posted tasks, in the order they were posted.
//
// The server hands work that must not run on the caller's thread to it: a
// streaming call's gRPC writes (server/api/generate_reactor.h), which would
// otherwise be serialized and started on the worker thread that produced
// the tokens, between two forward passes.
//
// Thread-safety: Post() may be called from any thread, also from a task.
// Lifetime: the destructor runs every task posted before it returns (tasks
// posted by those tasks too), then joins the thread. A task must not destroy
// its TaskThread. (Hand-written: Debian's Abseil 20220623 and gRPC 1.51 have
// no public executor; a mutex, a condition and a deque are all it needs.)
#ifndef HEADROOM_SERVER_COMMON_TASK_THREAD_H_
#define HEADROOM_SERVER_COMMON_TASK_THREAD_H_

#include <cstdint>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace hr {

class TaskThread {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  TaskThread();
  ~TaskThread();
  TaskThread(const TaskThread&) = delete;
  TaskThread& operator=(const TaskThread&) = delete;

  void Post(Task task) ABSL_LOCKS_EXCLUDED(mu_);

  // Tasks run so far (for tests and logs).
  int64_t tasks_run() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t tasks_run_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;  // last: started once the state above exists
};

}  // namespace hr

#endif  // HEADROOM_SERVER_COMMON_TASK_THREAD_H_
