// The pieces of a GPT-2-style pre-LayerNorm transformer block shared by the
// SeqPE main model (server/model/seqpe) and the SeqPE position encoder
// (server/longctx/seqpe): weight views and the row-wise layers.
//
// Layout: every matrix is [out_features, in_features] row-major (nn.Linear;
// GPT-2's Conv1D stores [in, out] and is transposed by the converter,
// tools/seqpe/convert_checkpoint.py). A block is
//   x += attn_out(Attention(LN1(x)));   x += ffn_down(gelu_tanh(ffn_up(LN2(x))))
// where attn_qkv yields [q | k | v] (each `dim` wide, heads contiguous).
//
// Thread-safety: the weight views are immutable; the functions are reentrant.
// Ownership: views point into storage owned elsewhere (SeqPeWeights::storage).
#ifndef HEADROOM_SERVER_MODEL_SEQPE_GPT2_LAYERS_H_
#define HEADROOM_SERVER_MODEL_SEQPE_GPT2_LAYERS_H_

#include <cstdint>

#include "server/model/weights.h"

namespace hr {

// y = x · wᵀ + b.
struct Linear {
  Matrix w;  // [out, in]
  Matrix b;  // [1, out]; b.data == nullptr: no bias
  int64_t out() const { return w.rows; }
  int64_t in() const { return w.cols; }
};

struct LayerNormWeights {
  Matrix w;  // [1, dim]
  Matrix b;  // [1, dim]
};

struct Gpt2BlockWeights {
  LayerNormWeights ln1;
  Linear attn_qkv;  // [3·dim, dim]
  Linear attn_out;  // [dim, dim]
  LayerNormWeights ln2;
  Linear ffn_up;    // [ffn_dim, dim]
  Linear ffn_down;  // [dim, ffn_dim]
};

// y[rows, l.out()] = x[rows, l.in()] · l.wᵀ + l.b.  REQUIRES: y does not alias x.
void ApplyLinear(const Linear& l, const float* x, int64_t rows, float* y);

// Rows [first, first + n) of the output features only: y[rows, n] (the q, k or
// v part of attn_qkv, whose weight rows are contiguous).
void ApplyLinearRows(const Linear& l, int64_t first, int64_t n, const float* x, int64_t rows,
                     float* y);

// y[rows, dim] = LayerNorm(x) (may alias).
void ApplyLayerNorm(const LayerNormWeights& ln, float eps, const float* x, int64_t rows,
                    int64_t dim, float* y);

// x[rows, dim] += ffn_down(gelu_tanh(ffn_up(LN2(x)))).
// Scratch: xn [rows, dim], hidden [rows, ffn_dim], out [rows, dim].
void AddMlp(const Gpt2BlockWeights& w, float eps, float* x, int64_t rows, int64_t dim, float* xn,
            float* hidden, float* out);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQPE_GPT2_LAYERS_H_
