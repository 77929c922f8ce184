// The CUDA entry points of a build without CUDA (cuda_engine.h).
#include "server/engine/cuda_engine.h"

namespace hr {
namespace {

absl::Status NotBuilt() {
  return absl::UnavailableError(
      "this build has no CUDA backend (nvcc was not found when it was configured)");
}

}  // namespace

bool CudaBackendCompiled() { return false; }
int VisibleCudaDevices() { return 0; }
std::string CudaDeviceName(int /*device*/) { return ""; }
absl::Status CudaSupports(const ModelConfig& /*config*/) { return NotBuilt(); }

absl::StatusOr<std::unique_ptr<ServedModel>> ServeLlamaCuda(LlamaWeights /*weights*/,
                                                            const CudaServeOptions& /*options*/) {
  return NotBuilt();
}

}  // namespace hr
