// Rotary position embedding (RoPE) on the CPU.
//
// Channel pair i of a head (of size head_dim) rotates by angle
// pos / linear_scale · theta^(-2i / head_dim). Positions may be any real
// number, negative included (slot-relative rotation, design.md §3).
#ifndef HEADROOM_KERNELS_CPU_ROPE_H_
#define HEADROOM_KERNELS_CPU_ROPE_H_

#include <cstdint>
#include <vector>

#include "kernels/rope_style.h"

namespace hr::cpu {

class Rope {
 public:
  Rope(int64_t head_dim, float theta, float linear_scale, RopeStyle style);

  // Rotates `n_heads` consecutive heads (each head_dim floats) at `x` by
  // position `pos`, in place.
  void Apply(float* x, int64_t n_heads, double pos) const;

  // Rotates rows of `n_heads` heads: row r (at x + r · row_stride) by
  // position pos0 + r.
  void ApplyRows(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, double pos0) const;

  int64_t head_dim() const { return head_dim_; }
  RopeStyle style() const { return style_; }
  // Rotation angle per unit position of channel pair i (linear scale applied).
  double inv_freq(int64_t i) const { return inv_freq_[i]; }

 private:
  int64_t head_dim_;
  RopeStyle style_;
  std::vector<double> inv_freq_;  // [head_dim / 2], already divided by linear_scale
};

// Precomputed rotations by whole multiples of `step` positions (j · step for
// j = 0 .. n_steps-1): rotating a query by (own_slot - slot) · chunk_size is a
// table lookup instead of head_dim/2 sines and cosines (design.md §3).
//
// Thread-safety: Reserve() is not thread-safe; Apply() is (read-only).
class RopeStepTable {
 public:
  RopeStepTable(const Rope& rope, int64_t step);

  // Makes steps 0 .. n_steps-1 available.
  void Reserve(int64_t n_steps);
  int64_t n_steps() const { return n_steps_; }

  // Rotates one head (head_dim floats) in place by j · step positions.
  // REQUIRES: 0 <= j < n_steps().
  void Apply(float* x, int64_t j) const;

 private:
  const Rope& rope_;
  const int64_t step_;
  int64_t n_steps_ = 0;
  std::vector<float> cos_, sin_;  // [n_steps][head_dim / 2]
};

}  // namespace hr::cpu

#endif  // HEADROOM_KERNELS_CPU_ROPE_H_
