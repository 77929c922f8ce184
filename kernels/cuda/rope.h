// Rotary position embedding on the device (design.md §3).
//
// Angles match kernels/cpu/rope.h exactly in construction: the inverse
// frequencies are computed on the host in double, angles are formed and their
// sines and cosines taken in double, then rounded to float.
#ifndef HEADROOM_KERNELS_CUDA_ROPE_H_
#define HEADROOM_KERNELS_CUDA_ROPE_H_

#include <cstdint>
#include <memory>

#include "kernels/cuda/common.h"
#include "kernels/rope_style.h"

namespace hr::cuda {

// Device tables of one model's RoPE: inverse frequencies, the rotations by
// whole multiples of `step` positions (j · step, j < n_steps) that rotate a
// query from its own slot to an earlier one (cpu::RopeStepTable), and the
// rotations by the local positions 0 .. step − 1 (local RoPE inside a chunk
// of `step` tokens: KvAppend's keys and queries), so that KvAppend reads two
// floats per pair instead of taking an FP64 sincos per token.
//
// Thread-safety: immutable after Create. Owns its device memory.
class RopeTables {
 public:
  static CudaStatus Create(int64_t head_dim, float theta, float linear_scale, RopeStyle style,
                           int64_t step, int64_t n_steps, std::unique_ptr<RopeTables>* out);
  ~RopeTables();
  RopeTables(const RopeTables&) = delete;
  RopeTables& operator=(const RopeTables&) = delete;

  int64_t head_dim() const { return head_dim_; }
  RopeStyle style() const { return style_; }
  int64_t step() const { return step_; }
  int64_t n_steps() const { return n_steps_; }
  const double* d_inv_freq() const { return d_inv_freq_; }  // [head_dim / 2]
  const float* d_step_cos() const { return d_step_cos_; }   // [n_steps][head_dim / 2]
  const float* d_step_sin() const { return d_step_sin_; }   // [n_steps][head_dim / 2]
  const float* d_local_cos() const { return d_local_cos_; } // [step][head_dim / 2]; null when step == 0
  const float* d_local_sin() const { return d_local_sin_; } // [step][head_dim / 2]; null when step == 0

 private:
  RopeTables() = default;
  int64_t head_dim_ = 0;
  RopeStyle style_ = RopeStyle::kNeoX;
  int64_t step_ = 0;
  int64_t n_steps_ = 0;
  double* d_inv_freq_ = nullptr;
  float* d_step_cos_ = nullptr;
  float* d_step_sin_ = nullptr;
  float* d_local_cos_ = nullptr;
  float* d_local_sin_ = nullptr;
};

// Rotates rows of heads (in place, or out of place from d_src): row r (at
// d_x + r · row_stride) rotates all
// its n_heads heads by position (pos0 + r) (or d_positions[r] when given),
// taken mod pos_modulus when pos_modulus > 0 (local RoPE: the offset inside a
// chunk). The model's forward pass rotates its queries in KvAppend instead.
struct RopeParams {
  float* d_x = nullptr;       // [rows][row_stride], heads [n_heads][head_dim] at the start
  int64_t rows = 0;
  int64_t row_stride = 0;     // floats; >= n_heads · head_dim
  // Out of place: the rows are read from d_src ([rows][src_stride], heads at
  // the start; e.g. the queries of a fused QKV row) and written rotated to
  // d_x. nullptr: in place.
  const float* d_src = nullptr;
  int64_t src_stride = 0;     // floats; >= n_heads · head_dim when d_src is given
  int64_t n_heads = 0;
  int64_t pos0 = 0;
  const int32_t* d_positions = nullptr;  // [rows] position of each row (instead of pos0 + r)
  int64_t pos_modulus = 0;
  const RopeTables* rope = nullptr;
  Stream stream = nullptr;
};
CudaStatus Rope(const RopeParams& p);

}  // namespace hr::cuda

#endif  // HEADROOM_KERNELS_CUDA_ROPE_H_
