#include "server/backend_cuda/device_buffer.h"

#include <cuda_runtime_api.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace hr {

absl::Status FromCudaStatus(cuda::CudaStatus s, std::string_view what) {
  const std::string msg = absl::StrCat(std::string(what), ": ", cuda::StatusName(s));
  switch (s) {
    case cuda::CudaStatus::kOk:
      return absl::OkStatus();
    case cuda::CudaStatus::kNoDevice:
      return absl::UnavailableError(msg);
    case cuda::CudaStatus::kInvalidShape:
      return absl::InvalidArgumentError(msg);
    case cuda::CudaStatus::kUnsupported:
      return absl::UnimplementedError(msg);
    case cuda::CudaStatus::kCudaError:
      break;
  }
  return absl::InternalError(absl::StrCat(msg, " (", cudaGetErrorString(cudaGetLastError()), ")"));
}

DeviceBuffer::~DeviceBuffer() { cudaFree(ptr_); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

absl::Status DeviceBuffer::Reserve(int64_t bytes) {
  if (bytes <= bytes_) return absl::OkStatus();
  cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
  if (const cudaError_t e = cudaMalloc(&ptr_, static_cast<size_t>(bytes)); e != cudaSuccess) {
    cudaGetLastError();
    ptr_ = nullptr;
    // Out of memory is the caller's to wait out; anything else is the device's.
    if (e == cudaErrorMemoryAllocation) {
      return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", bytes, " bytes: out of device memory"));
    }
    return absl::InternalError(absl::StrCat("cudaMalloc of ", bytes, " bytes failed: ", cudaGetErrorName(e)));
  }
  bytes_ = bytes;
  return absl::OkStatus();
}

absl::Status DeviceBuffer::Upload(const void* host, int64_t bytes) {
  if (absl::Status s = Reserve(bytes); !s.ok()) return s;
  if (bytes > 0 && cudaMemcpy(ptr_, host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice) != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaMemcpy of ", bytes, " bytes to the device failed"));
  }
  return absl::OkStatus();
}

}  // namespace hr
