// Shared vocabulary of the CUDA backend: status codes, element types, device
// queries. Plain C++ (no CUDA headers), so host code outside kernels/cuda can
// include every public header of this folder.
//
// Conventions of the kernels in this folder:
//   - each kernel takes one parameter struct whose members carry their shapes
//     in comments; pointers named d_* are device memory;
//   - it returns a CudaStatus: kInvalidShape for shapes it cannot serve,
//     kUnsupported for a dtype or head size outside its dispatch switch,
//     kCudaError when a launch fails; it never aborts;
//   - work is queued on `stream` (a cudaStream_t; nullptr is the default
//     stream) and is asynchronous unless the function says otherwise.
#ifndef HEADROOM_KERNELS_CUDA_COMMON_H_
#define HEADROOM_KERNELS_CUDA_COMMON_H_

#include <cstdint>
#include <string>

namespace hr::cuda {

enum class CudaStatus { kOk, kNoDevice, kInvalidShape, kUnsupported, kCudaError };

// "ok", "no_device", "invalid_shape", "unsupported", "cuda_error".
const char* StatusName(CudaStatus s);

// Element types of device buffers (KV cache, embedding tables, GEMM operands).
enum class DType { kF32, kF16, kBF16 };

inline int64_t DTypeBytes(DType t) { return t == DType::kF32 ? 4 : 2; }

// p advanced by `elems` elements of dtype t.
inline void* AdvanceElems(void* p, DType t, int64_t elems) {
  return static_cast<char*>(p) + elems * DTypeBytes(t);
}

using Stream = void*;  // cudaStream_t

// Number of visible devices (0 when no driver or no GPU).
int DeviceCount();
// "NVIDIA H100 80GB HBM3, 79 GiB, sm_90" or an empty string.
std::string DeviceName(int device);

// Memory of the calling thread's current device (cudaMemGetInfo): bytes in
// all and bytes free now (what this process and every other one hold is not).
struct DeviceMemory {
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;
};
CudaStatus CurrentDeviceMemory(DeviceMemory* out);

// Whether the calling thread's current device can run more work, for a
// caller whose work on it just failed. An error of a launch or call alone
// (not sticky) is cleared: kOk. kCudaError when the context holds a sticky
// error (an illegal address, a trap, an uncorrectable ECC error, ...): every
// later call fails the same way until the process exits; `*error` (may be
// null) gets "cudaErrorName: description". Synchronizes the device.
CudaStatus CheckContext(std::string* error);

// Fault drill: queues on `stream` a kernel that traps, which leaves the
// current device's context with a sticky launch failure exactly as a real
// fault would. The error shows at the next synchronization. kCudaError if
// the launch itself fails.
CudaStatus LaunchTrap(Stream stream);

// Head sizes the attention, summary and scoring kernels are compiled for
// (8 .. 32 serve tiny models such as stories260K, head_dim 8).
inline bool SupportedHeadDim(int64_t d) { return d == 8 || d == 16 || d == 32 || d == 64 || d == 128; }

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_COMMON_H_
