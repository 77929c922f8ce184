#include "server/common/task_thread.h"

#include <utility>

namespace hr {

TaskThread::TaskThread() : thread_([this] { Run(); }) {}

TaskThread::~TaskThread() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void TaskThread::Post(Task task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

int64_t TaskThread::tasks_run() const {
  absl::MutexLock lock(&mu_);
  return tasks_run_;
}

void TaskThread::Run() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](TaskThread* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t->mu_) { return t->stop_ || !t->tasks_.empty(); },
          this));
      if (tasks_.empty()) return;  // stop_, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    std::move(task)();
    absl::MutexLock lock(&mu_);
    ++tasks_run_;
  }
}

}  // namespace hr
