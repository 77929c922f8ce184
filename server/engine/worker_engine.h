// What one worker runs on (design.md §4): a forward-pass instance, the KV
// block store its sequences live in, and a way to start sequences there.
// ServedModel::NewWorkerEngine makes one per worker: on the CPU, a CausalLm
// instance and a host BlockPool (MakeCpuWorkerEngine); on a CUDA device, the
// CUDA backend's model and device cache (server/engine/cuda_engine.h).
//
// Thread-safety: not thread-safe. Created on any thread; BindThread() is then
// called on the worker's thread, which alone uses the engine until it ends.
// The engine is destroyed after that thread has been joined, and after every
// sequence and prefix-cache reference it handed out.
#ifndef HEADROOM_SERVER_ENGINE_WORKER_ENGINE_H_
#define HEADROOM_SERVER_ENGINE_WORKER_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/kvcache/block_pool.h"
#include "server/kvcache/kv_block_store.h"
#include "server/longctx/long_context_params.h"
#include "server/longctx/paged_kv_sequence.h"
#include "server/model/causal_lm.h"

namespace hr {

class ServedModel;

// The KV cache a worker engine gets (per worker: per device on CUDA).
struct KvCacheOptions {
  KvDType dtype = KvDType::kF32;
  // Bytes of KV blocks and summaries. 0: the engine's own size: on a CUDA
  // device what `memory_fraction` of it leaves after the weights and the
  // working memory of steps of `max_step_tokens` from `max_sequences`
  // sequences of `max_context_tokens` (server/backend_cuda/kv_budget.h); on
  // the CPU kDefaultCpuKvBytes.
  int64_t budget_bytes = int64_t{1} << 30;
  double memory_fraction = 0.9;
  int64_t max_step_tokens = 2048;
  int64_t max_context_tokens = 135168;
  int64_t max_sequences = 64;
};

// The CPU engine's KV budget when KvCacheOptions::budget_bytes is 0.
inline constexpr int64_t kDefaultCpuKvBytes = int64_t{1} << 30;

class WorkerEngine {
 public:
  virtual ~WorkerEngine() = default;

  // Called first on the worker's thread (binds it to the engine's device).
  virtual absl::Status BindThread() { return absl::OkStatus(); }

  // The forward pass; it runs sequences made by NewSequence() only.
  virtual CausalLm& model() = 0;
  virtual KvBlockStore& kv() = 0;
  virtual const KvBlockStore& kv() const = 0;

  // An empty sequence over kv() that will hold at most `capacity_tokens`
  // tokens. REQUIRES: the served model's CheckLongContext(params, ...) is OK.
  virtual absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(
      const LongContextParams& params, int64_t capacity_tokens) = 0;

  // "cpu", or "cuda:<device> (<name>)", for logs.
  virtual std::string device() const = 0;

  // Asked after a failed forward pass or NewSequence (or a fault drill's
  // step): OK when the engine can go on; UNAVAILABLE, saying why, when its
  // device is lost for good. A CUDA context holding a sticky error (an
  // illegal address, a trap, an uncorrectable ECC error) is: only a new
  // process clears it.
  virtual absl::Status CheckDevice() { return absl::OkStatus(); }

  // Fault drill: makes the device fail as a real fault would, so that the
  // worker, scheduler, health and metrics can be exercised on a live server.
  // CUDA: a kernel traps on the device (the context is lost for good); CPU:
  // the engine counts its device lost from then on (CheckDevice fails). An
  // error when the fault could not be made (the trap kernel not launched).
  virtual absl::Status InjectFault() = 0;
};

// The CPU engine of `served`: a NewInstance() model, a BlockPool of `kv`,
// and served.NewSequence() over that pool. `served` must outlive it.
std::unique_ptr<WorkerEngine> MakeCpuWorkerEngine(const ServedModel& served, const KvCacheOptions& kv);

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_WORKER_ENGINE_H_
