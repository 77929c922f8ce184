#include "server/engine/worker_engine.h"

#include "server/engine/served_model.h"

namespace hr {
namespace {

class CpuWorkerEngine : public WorkerEngine {
 public:
  CpuWorkerEngine(const ServedModel& served, const KvCacheOptions& kv)
      : served_(served),
        model_(served.NewInstance()),
        pool_(served.kv_geometry(), kv.dtype, kv.budget_bytes > 0 ? kv.budget_bytes : kDefaultCpuKvBytes) {}

  CausalLm& model() override { return *model_; }
  KvBlockStore& kv() override { return pool_; }
  const KvBlockStore& kv() const override { return pool_; }

  // CPU sequences grow as tokens arrive: the capacity only bounds the pool.
  absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(const LongContextParams& params,
                                                               int64_t /*capacity_tokens*/) override {
    return served_.NewSequence(params, &pool_);
  }

  std::string device() const override { return "cpu"; }

  absl::Status CheckDevice() override {
    if (!faulted_) return absl::OkStatus();
    return absl::UnavailableError("the CPU engine's device was failed by a fault drill");
  }
  absl::Status InjectFault() override {
    faulted_ = true;
    return absl::OkStatus();
  }

 private:
  const ServedModel& served_;
  std::unique_ptr<CausalLm> model_;
  BlockPool pool_;
  bool faulted_ = false;
};

}  // namespace

std::unique_ptr<WorkerEngine> MakeCpuWorkerEngine(const ServedModel& served, const KvCacheOptions& kv) {
  return std::make_unique<CpuWorkerEngine>(served, kv);
}

}  // namespace hr
