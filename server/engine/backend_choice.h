// Which backend the server's workers run on (--backend): `cpu`, `cuda`, or
// `auto` (CUDA when this build has it, a device is visible and the model
// runs there; else the CPU). Pure: the facts are gathered by the caller
// (cuda_engine.h), so every rule is testable without a GPU.
//
// Thread-safety: pure functions.
#ifndef HEADROOM_SERVER_ENGINE_BACKEND_CHOICE_H_
#define HEADROOM_SERVER_ENGINE_BACKEND_CHOICE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hr {

enum class Backend { kCpu, kCuda };

struct BackendFacts {
  bool cuda_compiled = false;  // CudaBackendCompiled()
  int cuda_devices = 0;        // VisibleCudaDevices()
  bool llama = true;           // the model is a LLaMA-family model (SeqPE runs on the CPU only)
  absl::Status cuda_supports;  // CudaSupports(config): OK or why not
};

// INVALID_ARGUMENT for a flag other than auto|cpu|cuda; for `cuda`,
// FAILED_PRECONDITION naming the first fact that rules CUDA out.
absl::StatusOr<Backend> ChooseBackend(std::string_view flag, const BackendFacts& facts);

// Workers to run: `requested` (0: automatic) on the CPU, where automatic is
// 1; on CUDA one per visible device, automatic meaning all of them.
// INVALID_ARGUMENT when CUDA is asked for more workers than devices.
absl::StatusOr<int> ChooseWorkers(Backend backend, int requested, int cuda_devices);

const char* BackendName(Backend backend);  // "cpu" | "cuda"

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_BACKEND_CHOICE_H_
