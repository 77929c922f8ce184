// The server side of one streaming Generate call: a gRPC write reactor that
// is also the request's RequestSink.
//
// Events from the engine are queued, never written from the caller's stack
// while a write is outstanding: one write is in flight at a time, and while
// it is, new token deltas are appended to the queued delta (ids, text and
// logprobs concatenated) and a new progress event replaces the queued one,
// so a slow reader receives fewer, larger messages instead of an unbounded
// backlog. The last message is Finished, followed by an OK status; an engine
// error instead ends the stream with that status after the queued messages.
//
// Cancellation: when the client cancels (or its deadline passes, or a write
// fails), the reactor asks the scheduler to cancel the request, which frees
// its KV blocks at the worker's next step, and finishes the call with
// CANCELLED without waiting for the engine.
//
// Lifetime: owned by shared_ptr. The reactor holds a reference to itself from
// Create() until gRPC's OnDone; the engine holds the sink's reference until
// its last call (OnFinish / OnError) and the request is released. The object
// lives until both are gone, so neither side can call into freed memory.
// After OnDone, sink calls only touch the reactor's own state.
//
// Thread-safety: sink methods are called from a worker thread, reactions
// from gRPC threads; all shared state is under `mu_`. gRPC operations
// (StartWrite, Finish) are issued outside `mu_`, because gRPC may run a
// reaction inline on the calling thread. Nothing here blocks or starts
// threads.
//
// Writes off the worker thread: given a `writer` TaskThread, a sink call
// only queues its event; when no write is in flight it posts the reactor to
// the writer once, which serializes the message and starts the write there
// (later writes start from OnWriteDone, on gRPC's threads, as before). A
// worker step that streamed 64 tokens spent ~1.8 ms of host time in these
// calls on the CPU server (bench/results/serving_cpu.md), between two
// forward passes.
#ifndef HEADROOM_SERVER_API_GENERATE_REACTOR_H_
#define HEADROOM_SERVER_API_GENERATE_REACTOR_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "headroom/v1/headroom.pb.h"
#include "server/engine/request.h"

namespace hr {
class Scheduler;
class TaskThread;
}

namespace hr::api {

class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                              public RequestSink,
                              public std::enable_shared_from_this<GenerateReactor> {
 public:
  // A reactor for request `request_id` (echoed on every message).
  // `scheduler` (borrowed; must outlive the gRPC call) receives Cancel().
  // `writer` (borrowed, may be null: writes start on the sink's caller)
  // must outlive the engine's last sink call and the gRPC call.
  static std::shared_ptr<GenerateReactor> Create(std::string request_id, Scheduler* scheduler,
                                                 TaskThread* writer = nullptr);

  // Ends the call with `status` (a request rejected before or by Submit;
  // the engine will never call this sink).
  void Reject(const absl::Status& status);
  // The request was submitted: from now on a client cancel is forwarded to
  // the scheduler.
  void MarkSubmitted();

  // RequestSink (worker thread).
  void OnPrefillProgress(int64_t processed, int64_t total, int64_t cached) override;
  void OnTokens(TokenEvent event) override;
  void OnPromptLogprobs(int64_t first_position, std::vector<float> logprobs) override;
  void OnFinish(const FinishEvent& finish) override;
  void OnError(const absl::Status& status) override;

  // Reactions (gRPC threads).
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  GenerateReactor(std::string request_id, Scheduler* scheduler, TaskThread* writer);

  // Queues `status` as the call's end (the first one wins).
  void EndLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops writing: drops the queue and ends with CANCELLED; true when the
  // scheduler should be told.
  bool AbortLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the next write, or the Finish, when nothing is in flight.
  void Pump() ABSL_LOCKS_EXCLUDED(mu_);
  // Pump() for a sink call: on the writer thread when there is one (posted
  // at most once at a time, and not while a write is in flight: its
  // OnWriteDone pumps), else here.
  void PumpFromSink() ABSL_LOCKS_EXCLUDED(mu_);
  void CancelInScheduler();

  const std::string request_id_;
  Scheduler* const scheduler_;
  TaskThread* const writer_;

  absl::Mutex mu_;
  std::deque<headroom::v1::GenerateResponse> queue_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);  // set: no more events
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  bool submitted_ ABSL_GUARDED_BY(mu_) = false;
  bool engine_done_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  bool posted_ ABSL_GUARDED_BY(mu_) = false;  // a Pump() waits on the writer
  std::shared_ptr<GenerateReactor> self_ ABSL_GUARDED_BY(mu_);  // until OnDone
  // The message being written: assigned under mu_ while no write is in
  // flight, then read by gRPC until OnWriteDone.
  grpc::ByteBuffer write_buffer_;
};

}  // namespace hr::api

#endif  // HEADROOM_SERVER_API_GENERATE_REACTOR_H_
