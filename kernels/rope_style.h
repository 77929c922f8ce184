// RoPE channel pairing, shared by every backend.
#ifndef HEADROOM_KERNELS_ROPE_STYLE_H_
#define HEADROOM_KERNELS_ROPE_STYLE_H_

namespace hr {

enum class RopeStyle {
  kAdjacent,  // pairs (2i, 2i+1): GGUF `llama` (llama.cpp "normal" rope)
  kNeoX,      // pairs (i, i + d/2): Hugging Face checkpoints
};

}  // namespace hr

#endif  // HEADROOM_KERNELS_ROPE_STYLE_H_
