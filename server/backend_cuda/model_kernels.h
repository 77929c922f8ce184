// Small kernels of the CUDA forward pass that only the model needs (the
// shared ones are in kernels/cuda): the RMSNorm into a BF16 GEMM input, the fused
// gate|up SwiGLU, row gathers, and the per-chunk bookkeeping of long-context
// attention. Plain C++ header; each returns a cuda::CudaStatus and queues its
// work on `stream` (a cudaStream_t).
#ifndef HEADROOM_SERVER_BACKEND_CUDA_MODEL_KERNELS_H_
#define HEADROOM_SERVER_BACKEND_CUDA_MODEL_KERNELS_H_

#include <cstdint>

#include "kernels/cuda/common.h"

namespace hr::backend_cuda {

// y = RMSNorm(x) · weight per row, written as BF16 (the F32 form is
// cuda::RmsNorm). x, weight F32 [rows, dim] / [dim]; y BF16 [rows, dim];
// pointers as cudaMalloc returns them (16-byte aligned rows when dim % 4 == 0).
cuda::CudaStatus RmsNormToBf16(const float* d_x, const float* d_weight, void* d_y, int64_t rows,
                               int64_t dim, float eps, cuda::Stream stream);

// out[r][i] = silu(gu[r][i]) · gu[r][ffn + i]: the fused gate|up GEMM output
// [rows][2·ffn] to the down GEMM's input [rows][ffn], both in `dtype`: kF32
// (the exactness path) or kBF16 (the GEMM writes BF16: half the bytes this
// pass reads; the sigmoid and product are computed in FP32).
cuda::CudaStatus SwiGluRows(const void* d_gu, cuda::DType dtype, int64_t rows, int64_t ffn, void* d_out,
                            cuda::Stream stream);

// dst[i] = src[rows[i]] for i < n_rows; rows of `dim` floats.
cuda::CudaStatus GatherRows(const float* d_src, const int32_t* d_rows, int64_t n_rows, int64_t dim,
                            float* d_dst, cuda::Stream stream);

// Keeps the local-RoPE queries of new tokens for their chunk's longheads
// summary: dst[h][(pos0 + i) mod w][:] = q_local[i][h][:] for i < n.
// REQUIRES: the n positions lie in one chunk.
cuda::CudaStatus ScatterChunkQueries(const float* d_q_local, int64_t n, int64_t pos0, int64_t w,
                                     int64_t n_heads, int64_t head_dim, float* d_dst, cuda::Stream stream);

// Prefill per-chunk selection over a span (queries at pos0 .. pos0+n-1):
// every query in chunk c gets, for each head and candidate chunk j in
// 1 .. c-2, the sum over the span's queries in chunk c, in query order
// (hr::PagedSequence's order). scores [n][n_heads][n_chunks], n_chunks > the
// last chunk.
cuda::CudaStatus SumScoresOverQueries(float* d_scores, int64_t n, int64_t n_heads, int64_t n_chunks,
                                      int64_t pos0, int64_t chunk_size, cuda::Stream stream);

}  // namespace hr::backend_cuda

#endif  // HEADROOM_SERVER_BACKEND_CUDA_MODEL_KERNELS_H_
