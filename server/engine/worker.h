// A worker: one thread that owns an engine (worker_engine.h: a CPU thread
// group or one CUDA device, with a model instance and a paged KV cache), the
// prefix cache over that cache, and a running batch.
//
// Step loop (design.md §4), repeated while there is work:
//   1. take new requests from the inbox; drop cancelled and expired ones
//      (CANCELLED / DEADLINE_EXCEEDED), freeing their KV blocks;
//   2. plan a batch under `step_tokens` (`prefill_step_tokens` when no
//      sequence is decoding): one token for every decoding
//      sequence, then prefill pieces (highest priority, oldest first;
//      chunk-aligned under per-chunk prefill selection; the first piece of
//      a step always progresses, so decoding never starves a prompt); admit waiting requests while KV blocks allow (the whole
//      prompt must fit, prefix-cache hits and evictable cache blocks count
//      as room); when a decoding sequence needs a block and none is left,
//      preempt the lowest-priority, newest sequence (its KV is freed; it
//      recomputes prompt + generated tokens when readmitted);
//   3. one CausalLm::Forward over the batch (the model family behind
//      ServedModel, served_model.h);
//   4. sample, emit tokens and progress to the sinks, finish requests.
//
// Thread-safety: Enqueue, Wake, GetLoad, CachedPrefixTokens, lost, device,
// Start and Stop may be called from any thread; everything else runs on the worker's
// own thread. Ownership: borrows the served model, tokenizer and metrics (they must
// outlive the worker); owns its thread, engine and sequences.
//
// A lost device: when the engine cannot bind the worker's thread
// (BindThread), or a forward pass or a new sequence fails and
// WorkerEngine::CheckDevice says the device is lost for good (a sticky CUDA
// fault), the worker is lost(): it
// calls WorkerOptions::on_device_lost, fails its running and waiting
// requests and every later one with UNAVAILABLE (another replica may serve
// them), and its load shows no room. A failed step on a healthy device only
// fails that step's requests with INTERNAL.
#ifndef HEADROOM_SERVER_ENGINE_WORKER_H_
#define HEADROOM_SERVER_ENGINE_WORKER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/engine/request.h"
#include "server/engine/served_model.h"
#include "server/kvcache/block_pool.h"
#include "server/model/tokenizer.h"

namespace hr {

class ServerMetrics;

struct WorkerOptions {
  int32_t threads = 0;                      // kernel threads (0: OpenMP default)
  int64_t kv_cache_bytes = 1LL << 30;       // KV pool budget (blocks + summaries)
  KvDType kv_dtype = KvDType::kF32;
  int32_t step_tokens = 512;                // tokens per forward step at most
  // Tokens per step at most when no sequence decodes in it (0: step_tokens).
  // A prompt alone then goes through in larger pieces: each KV chunk a
  // LongHeads prefill reads is shared by more queries (PagedSequence reads
  // the union of a block's chunks once), and no decode latency is at stake.
  int32_t prefill_step_tokens = 0;
  int32_t max_running = 64;                 // sequences in the batch at most
  bool prefix_cache = true;                 // reuse complete prompt chunks
  // Fault drill (--device_fault_drill_step): > 0 makes the engine's device
  // fail (WorkerEngine::InjectFault) just before this worker's N-th forward
  // step.
  int64_t fault_drill_step = 0;
  // Called once, on the worker's thread, when the worker is lost, before its
  // requests hear of it (the server turns its health NOT_SERVING).
  std::function<void(int worker, const absl::Status& why)> on_device_lost = nullptr;
};

struct WorkerLoad {
  int64_t free_bytes = 0;     // KV budget not held by sequences (evictable cache counts as free)
  int64_t budget_bytes = 0;
  int64_t running = 0;
  int64_t waiting = 0;        // queued in this worker, not yet admitted
  int64_t waiting_bytes = 0;  // KV the waiting requests' prompts will need
};

class Worker {
 public:
  // Runs on `engine` (from model.NewWorkerEngine; options.kv_dtype and
  // kv_cache_bytes are then the engine's business).
  Worker(int index, const ServedModel& model, std::unique_ptr<WorkerEngine> engine,
         const Tokenizer& tokenizer, const WorkerOptions& options, ServerMetrics* metrics);
  // Runs on model.NewWorkerEngine(index, {options.kv_dtype,
  // options.kv_cache_bytes}), which must not fail (CPU models).
  Worker(int index, const ServedModel& model, const Tokenizer& tokenizer,
         const WorkerOptions& options, ServerMetrics* metrics);
  ~Worker();  // Stop()s
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();
  // Ends the thread after failing every live request with UNAVAILABLE.
  void Stop();

  // Queues a request; the worker admits it when its KV cache has room.
  void Enqueue(std::shared_ptr<Request> request);
  // Makes the worker look at its requests now (after a Cancel).
  void Wake();

  WorkerLoad GetLoad() const;
  // Prompt tokens of `spec` this worker's prefix cache holds now.
  int64_t CachedPrefixTokens(const RequestSpec& spec) const;
  // KV bytes the request needs at its longest (prompt + max_tokens).
  int64_t BytesNeeded(const RequestSpec& spec) const;
  int64_t budget_bytes() const;
  int index() const;
  // Whether the worker's device is lost (see above); once true, stays true.
  bool lost() const;
  // Where it runs: "cpu", or "cuda:<device> (<name>)".
  std::string device() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_WORKER_H_
