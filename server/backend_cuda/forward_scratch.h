// Device scratch of one CudaLlamaModel's Forward calls (internal). Buffers
// grow to the largest batch seen and are reused; everything is ordered on the
// model's one stream.
#ifndef HEADROOM_SERVER_BACKEND_CUDA_FORWARD_SCRATCH_H_
#define HEADROOM_SERVER_BACKEND_CUDA_FORWARD_SCRATCH_H_

#include "server/backend_cuda/device_buffer.h"

namespace hr {

struct ForwardScratch {
  // int32: block tables [n] (each row's sequence's, device pointers: 2 ints
  // each) | tokens [n] | positions [n] | row blocks [n] | logit rows [m]
  DeviceBuffer ints;
  DeviceBuffer x;        // F32 [n][dim] residual stream
  DeviceBuffer xn;       // [n][dim] normed, in the matrix dtype
  DeviceBuffer qkv;      // F32 [n][(H + 2G)·d]
  DeviceBuffer q_local;  // F32 [n][H·d] local-RoPE queries
  DeviceBuffer attn;     // [n][H·d] attention output, in the matrix dtype
  DeviceBuffer gu;       // [n][2·ffn] in the matrix dtype
  DeviceBuffer h;        // [n][ffn] SwiGLU output, in the matrix dtype
  DeviceBuffer last;     // F32 [m][dim] rows whose logits are asked for
  DeviceBuffer last_n;   // [m][dim] normed, in the matrix dtype
  DeviceBuffer logits;   // F32 [m][vocab]
  // Per span of one sequence's queries (prefill; lists right-aligned in rows
  // of the last chunk's list length), or per run of a batch's decode rows.
  DeviceBuffer scores;     // F32 [nq][H][c_last + 1]
  DeviceBuffer chunks;     // int32 [nq][H][list stride]
  // The batch's decode steps, row after row: int32 [decode rows][H][stride]
  // block lists, right-aligned in rows of the longest.
  DeviceBuffer decode_blocks;
  DeviceBuffer decode_ws;  // split-K partials of DecodeAttention
  DeviceBuffer prefill_ws;  // split partials of PrefillAttention (tensor cores)
};

}  // namespace hr

#endif  // HEADROOM_SERVER_BACKEND_CUDA_FORWARD_SCRATCH_H_
