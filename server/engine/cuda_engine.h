// The CUDA backend behind the serving engine (issue 6, design.md §8): a LLaMA
// model served from CUDA devices, worker i on device i, each worker engine
// holding the CUDA forward pass (server/backend_cuda/cuda_llama_model.h) and
// its device KV cache, which the worker's prefix cache shares blocks of.
//
// The semantics are the CPU backend's (same policies, summaries, GQA and
// prefill selection modes); the differences:
//   * one chunk size per model (the device cache's block size): a request
//     asking for another gets UNIMPLEMENTED, naming the size served;
//   * a sequence is created for prompt + max_tokens tokens (its device block
//     table is sized for them);
//   * selection dumps (SelectionObserver) are not produced on the device;
//   * KvCacheOptions::budget_bytes 0 sizes the cache from the device
//     (server/backend_cuda/kv_budget.h);
//   * a sticky CUDA error loses the worker (CheckDevice; worker.h), and the
//     fault drill really traps a kernel.
//
// In a build without CUDA (nvcc not found at configure time) the same
// functions exist: CudaBackendCompiled() is false, VisibleCudaDevices() 0,
// and ServeLlamaCuda() UNAVAILABLE.
//
// Thread-safety: the functions are thread-safe; the ServedModel follows
// served_model.h (its worker engines are each one worker thread's).
#ifndef HEADROOM_SERVER_ENGINE_CUDA_ENGINE_H_
#define HEADROOM_SERVER_ENGINE_CUDA_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/engine/served_model.h"
#include "server/model/weights.h"

namespace hr {

struct CudaServeOptions {
  int32_t chunk_size = 256;   // tokens per KV block: the only chunk size served
  bool bf16_weights = false;  // BF16 weight matrices, FP32 accumulation; false: FP32 everywhere
};

// Whether this binary contains the CUDA backend.
bool CudaBackendCompiled();

// CUDA devices this process sees (CUDA_VISIBLE_DEVICES applies); 0 without
// the backend, a driver or a device.
int VisibleCudaDevices();

// "NVIDIA H100 80GB HBM3, 79 GiB, sm_90"; empty when unknown.
std::string CudaDeviceName(int device);

// Whether the CUDA kernels run this model shape: UNIMPLEMENTED naming what
// they lack (the head size), UNAVAILABLE without the backend.
absl::Status CudaSupports(const ModelConfig& config);

// A LLaMA model whose worker engine `i` runs on CUDA device i (its weights
// copied there when the engine is made; `weights` stays on the host for the
// CPU entry points of ServedModel). UNAVAILABLE without the backend; as
// CudaSupports for the shape.
absl::StatusOr<std::unique_ptr<ServedModel>> ServeLlamaCuda(LlamaWeights weights,
                                                            const CudaServeOptions& options);

}  // namespace hr

#endif  // HEADROOM_SERVER_ENGINE_CUDA_ENGINE_H_
