// Device memory of the CUDA backend: an owning buffer and CUDA-status
// conversion. Plain C++ (no CUDA headers).
//
// Thread-safety: none (a buffer belongs to its model's worker thread).
#ifndef HEADROOM_SERVER_BACKEND_CUDA_DEVICE_BUFFER_H_
#define HEADROOM_SERVER_BACKEND_CUDA_DEVICE_BUFFER_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/cuda/common.h"

namespace hr {

// absl::Status for a kernel's CudaStatus: OK, UNAVAILABLE (no device),
// INVALID_ARGUMENT (shape), UNIMPLEMENTED (dtype/head size), INTERNAL (CUDA
// error); the message names `what`.
absl::Status FromCudaStatus(cuda::CudaStatus s, std::string_view what);

// Returns from the enclosing function when a kernel call fails.
#define HR_CUDA_OK(expr, what)                                                  \
  do {                                                                          \
    const ::hr::cuda::CudaStatus hr_cuda_status_ = (expr);                      \
    if (hr_cuda_status_ != ::hr::cuda::CudaStatus::kOk) {                       \
      return ::hr::FromCudaStatus(hr_cuda_status_, what);                       \
    }                                                                           \
  } while (0)

// cudaMalloc'd bytes, freed on destruction. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // At least `bytes` bytes; contents are lost when it grows (which frees the
  // old memory and so waits for the device). RESOURCE_EXHAUSTED when the
  // device is out of memory, INTERNAL for any other CUDA error.
  absl::Status Reserve(int64_t bytes);
  // Reserve(bytes) then a synchronous copy of `bytes` bytes from the host.
  absl::Status Upload(const void* host, int64_t bytes);

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  int64_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_DEVICE_BUFFER_H_
