#include "server/engine/backend_choice.h"

#include "absl/strings/str_cat.h"

namespace hr {
namespace {

// OK when CUDA can serve the model, else why not.
absl::Status CudaUsable(const BackendFacts& f) {
  if (!f.cuda_compiled) {
    return absl::FailedPreconditionError(
        "this build has no CUDA backend (nvcc was not found when it was configured)");
  }
  if (f.cuda_devices <= 0) {
    return absl::FailedPreconditionError(
        "no CUDA device is visible (no driver or GPU, or CUDA_VISIBLE_DEVICES hides them)");
  }
  if (!f.llama) {
    return absl::FailedPreconditionError("SeqPE models run on the CPU backend only");
  }
  if (!f.cuda_supports.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the CUDA backend cannot run this model: ", f.cuda_supports.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Backend> ChooseBackend(std::string_view flag, const BackendFacts& facts) {
  if (flag == "cpu") return Backend::kCpu;
  if (flag == "auto") return CudaUsable(facts).ok() ? Backend::kCuda : Backend::kCpu;
  if (flag == "cuda") {
    const absl::Status usable = CudaUsable(facts);
    if (!usable.ok()) return absl::FailedPreconditionError(absl::StrCat("--backend=cuda: ", usable.message()));
    return Backend::kCuda;
  }
  return absl::InvalidArgumentError(absl::StrCat("--backend must be auto, cpu or cuda, got '", std::string(flag), "'"));
}

absl::StatusOr<int> ChooseWorkers(Backend backend, int requested, int cuda_devices) {
  if (requested < 0) return absl::InvalidArgumentError(absl::StrCat("--workers must be >= 0, got ", requested));
  if (backend == Backend::kCpu) return requested == 0 ? 1 : requested;
  if (requested == 0) return cuda_devices;
  if (requested > cuda_devices) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers ", requested, ": the CUDA backend runs one worker per device and ",
                     cuda_devices, " are visible"));
  }
  return requested;
}

const char* BackendName(Backend backend) { return backend == Backend::kCuda ? "cuda" : "cpu"; }

}  // namespace hr
