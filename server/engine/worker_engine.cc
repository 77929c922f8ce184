#include "server/engine/worker_engine.h"

#include <utility>

namespace hr {
namespace {

class CpuWorkerEngine : public WorkerEngine {
 public:
  using NewSequenceFn = std::function<absl::StatusOr<std::unique_ptr<PagedKvSequence>>(
      const LongContextParams&, BlockPool*)>;

  CpuWorkerEngine(std::unique_ptr<CausalLm> model, const KvGeometry& geometry,
                  const KvCacheOptions& kv, NewSequenceFn new_sequence)
      : model_(std::move(model)),
        pool_(geometry, kv.dtype, kv.budget_bytes),
        new_sequence_(std::move(new_sequence)) {}

  CausalLm& model() override { return *model_; }
  KvBlockStore& kv() override { return pool_; }
  const KvBlockStore& kv() const override { return pool_; }

  // CPU sequences grow as tokens arrive: the capacity only bounds the pool.
  absl::StatusOr<std::unique_ptr<PagedKvSequence>> NewSequence(const LongContextParams& params,
                                                               int64_t /*capacity_tokens*/) override {
    return new_sequence_(params, &pool_);
  }

  std::string device() const override { return "cpu"; }

 private:
  std::unique_ptr<CausalLm> model_;
  BlockPool pool_;
  NewSequenceFn new_sequence_;
};

}  // namespace

std::unique_ptr<WorkerEngine> MakeCpuWorkerEngine(
    std::unique_ptr<CausalLm> model, const KvGeometry& geometry, const KvCacheOptions& kv,
    std::function<absl::StatusOr<std::unique_ptr<PagedKvSequence>>(const LongContextParams&,
                                                                   BlockPool*)>
        new_sequence) {
  return std::make_unique<CpuWorkerEngine>(std::move(model), geometry, kv, std::move(new_sequence));
}

}  // namespace hr
