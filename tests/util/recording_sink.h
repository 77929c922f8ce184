// A RequestSink that records one request's events for tests; Wait() blocks
// until the last one. Thread-safe (events come from a worker thread).
#ifndef HEADROOM_TESTS_UTIL_RECORDING_SINK_H_
#define HEADROOM_TESTS_UTIL_RECORDING_SINK_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/engine/request.h"

namespace hr::testing {

class RecordingSink : public RequestSink {
 public:
  void OnPrefillProgress(int64_t processed, int64_t total, int64_t cached) override {
    absl::MutexLock lock(&mu_);
    progress_.push_back(processed);
    total_ = total;
  }
  void OnTokens(TokenEvent event) override {
    absl::MutexLock lock(&mu_);
    ids_.insert(ids_.end(), event.ids.begin(), event.ids.end());
    text_ += event.text;
    ++events_;
  }
  void OnPromptLogprobs(int64_t first_position, std::vector<float> logprobs) override {
    absl::MutexLock lock(&mu_);
    if (prompt_logprobs_.empty()) prompt_first_ = first_position;
    EXPECT_EQ(first_position, prompt_first_ + static_cast<int64_t>(prompt_logprobs_.size()));
    prompt_logprobs_.insert(prompt_logprobs_.end(), logprobs.begin(), logprobs.end());
  }
  std::vector<float> prompt_logprobs() {
    absl::MutexLock lock(&mu_);
    return prompt_logprobs_;
  }
  int64_t prompt_first() {
    absl::MutexLock lock(&mu_);
    return prompt_first_;
  }
  void OnFinish(const FinishEvent& finish) override {
    absl::MutexLock lock(&mu_);
    finish_ = finish;
    finish_rank_ = next_rank_.fetch_add(1);
    done_ = true;
  }
  void OnError(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }
  void Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }
  // Blocks until at least `n` tokens arrived (or the request ended).
  void WaitForTokens(size_t n) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || ids_.size() >= n; };
    mu_.Await(absl::Condition(&ready));
  }
  std::vector<int32_t> ids() {
    absl::MutexLock lock(&mu_);
    return ids_;
  }
  std::string text() {
    absl::MutexLock lock(&mu_);
    return text_;
  }
  absl::Status status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  FinishEvent finish() {
    absl::MutexLock lock(&mu_);
    return finish_;
  }
  int finish_rank() {
    absl::MutexLock lock(&mu_);
    return finish_rank_;
  }
  std::vector<int64_t> progress() {
    absl::MutexLock lock(&mu_);
    return progress_;
  }

 private:
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int32_t> ids_ ABSL_GUARDED_BY(mu_);
  std::string text_ ABSL_GUARDED_BY(mu_);
  int events_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> progress_ ABSL_GUARDED_BY(mu_);
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  FinishEvent finish_ ABSL_GUARDED_BY(mu_);
  int finish_rank_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<float> prompt_logprobs_ ABSL_GUARDED_BY(mu_);
  int64_t prompt_first_ ABSL_GUARDED_BY(mu_) = -1;
  static inline std::atomic<int> next_rank_{0};
};

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_UTIL_RECORDING_SINK_H_
