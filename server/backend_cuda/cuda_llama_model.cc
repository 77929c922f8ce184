#include "server/backend_cuda/cuda_llama_model.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/paged_kv.h"
#include "kernels/cuda/rope.h"
#include "server/backend_cuda/attention_step.h"
#include "server/backend_cuda/cuda_kv_cache.h"
#include "server/backend_cuda/device_weights.h"
#include "server/backend_cuda/forward_scratch.h"
#include "server/backend_cuda/kv_budget.h"
#include "server/backend_cuda/model_kernels.h"
#include "server/common/status.h"
#include "server/longctx/chunk_selection.h"

namespace hr {
namespace {

cudaStream_t AsStream(void* s) { return static_cast<cudaStream_t>(s); }

absl::Status CudaCall(cudaError_t e, std::string_view what) {
  if (e == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();
  return absl::InternalError(absl::StrCat(std::string(what), ": ", cudaGetErrorString(e)));
}

// Split-K partials the decode workspace holds for kDecodeMaxQueries rows; a
// longer run of a batch's decode rows gets proportionally fewer splits.
constexpr int32_t kDecodeMaxSplits = 64;

}  // namespace

absl::StatusOr<std::unique_ptr<CudaLlamaModel>> CudaLlamaModel::Create(const LlamaWeights& weights,
                                                                       const CudaModelOptions& options) {
  const ModelConfig& c = weights.config;
  HR_RETURN_IF_ERROR(c.Validate());
  if (cuda::DeviceCount() == 0) return absl::UnavailableError("no CUDA device visible");
  if (!cuda::SupportedHeadDim(c.head_dim)) {
    return absl::UnimplementedError(absl::StrCat("CUDA kernels are not compiled for head_dim ", c.head_dim));
  }
  if (options.chunk_size <= 0) return absl::InvalidArgumentError("chunk_size must be > 0");
  std::unique_ptr<CudaLlamaModel> m(new CudaLlamaModel(c, options));
  // A blocking stream: it also waits for the synchronous uploads (weights,
  // RoPE tables), which run on the legacy default stream.
  HR_RETURN_IF_ERROR(
      CudaCall(cudaStreamCreate(reinterpret_cast<cudaStream_t*>(&m->stream_)), "cudaStreamCreate"));
  HR_ASSIGN_OR_RETURN(m->weights_, DeviceWeights::Upload(weights, options.weights == WeightDType::kBF16
                                                                      ? cuda::DType::kBF16
                                                                      : cuda::DType::kF32));
  m->scratch_ = std::make_unique<ForwardScratch>();
  HR_RETURN_IF_ERROR(m->scratch_->decode_ws.Reserve(static_cast<int64_t>(
      cuda::DecodeAttentionWorkspaceBytes(static_cast<int32_t>(kDecodeMaxQueries), static_cast<int32_t>(c.n_heads),
                                          static_cast<int32_t>(c.head_dim), kDecodeMaxSplits))));
  HR_RETURN_IF_ERROR(m->EnsureRopeSteps(3));
  const KvGeometry g{c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim};
  int64_t kv_budget = options.kv_budget_bytes;
  if (kv_budget == 0) {
    // What the device has left with the weights in place and the working
    // memory held (so that sequences' own buffers cannot take it first).
    if (absl::Status s = m->ReserveWorkingScratch(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("the forward pass's working memory (steps of ", options.max_step_tokens,
                                                 " tokens over contexts of ", options.max_context_tokens,
                                                 "; lower --step_tokens / --prefill_step_tokens / "
                                                 "--max_input_tokens, or set --kv_cache_mb): ",
                                                 s.message()));
    }
    cuda::DeviceMemory memory;
    HR_CUDA_OK(cuda::CurrentDeviceMemory(&memory), "cudaMemGetInfo");
    HR_ASSIGN_OR_RETURN(kv_budget, AutoKvBudget(memory, options.memory_fraction, kWorkingMarginBytes,
                                                CudaKvCache::BlockBytes(g, options.kv_dtype, options.chunk_size)));
  }
  HR_ASSIGN_OR_RETURN(m->cache_, CudaKvCache::Create(g, options.kv_dtype, options.chunk_size, kv_budget));
  return m;
}

namespace {

// The most each ForwardScratch buffer reaches, in bytes, over Forward calls
// of at most max_step_tokens tokens (every one with logits) from at most
// max_sequences sequences of at most max_context_tokens tokens: each term is
// the Reserve in Forward / RunAttentionStep at its largest (decode_ws is
// reserved at Create).
struct ScratchSizes {
  int64_t ints, x, xn, qkv, q_local, attn, gu, h, last, last_n, logits, decode_blocks;
  AttentionScratchBound attention;

  int64_t Sum() const {
    return ints + x + xn + qkv + q_local + attn + gu + h + last + last_n + logits + decode_blocks +
           attention.scores + attention.chunks + attention.prefill_ws;
  }
};

ScratchSizes ScratchBound(const ModelConfig& c, const CudaModelOptions& o) {
  const int64_t n = std::max<int64_t>(1, o.max_step_tokens);
  const int64_t mbytes = o.weights == WeightDType::kBF16 ? 2 : 4;
  const int64_t q_width = c.n_heads * c.head_dim;
  const int64_t chunk_ids = (std::max<int64_t>(1, o.max_context_tokens) + o.chunk_size - 1) / o.chunk_size;
  const int64_t decode_rows = std::min(n, std::max<int64_t>(1, o.max_sequences) * CudaLlamaModel::kDecodeMaxQueries);
  ScratchSizes z;
  z.ints = (CudaLlamaModel::kRowInts + 1) * n * 4;  // ForwardScratch::ints, a logit row per token
  z.x = n * c.dim * 4;
  z.xn = n * c.dim * mbytes;
  z.qkv = n * (q_width + 2 * c.n_kv_heads * c.head_dim) * 4;
  z.q_local = n * q_width * 4;
  z.attn = n * q_width * mbytes;
  z.gu = n * 2 * c.ffn_dim * mbytes;
  z.h = n * c.ffn_dim * mbytes;
  z.last = n * c.dim * 4;
  z.last_n = n * c.dim * mbytes;
  z.logits = n * c.vocab_size * 4;
  z.decode_blocks = decode_rows * c.n_heads * chunk_ids * 4;  // lists no longer than the chunk ids
  z.attention = AttentionScratchBytesBound(c, n, chunk_ids, o.chunk_size, decode_rows);
  return z;
}

}  // namespace

int64_t CudaLlamaModel::WorkingBytesBound(const ModelConfig& config, const CudaModelOptions& options) {
  return ScratchBound(config, options).Sum() + kWorkingMarginBytes;
}

absl::Status CudaLlamaModel::ReserveWorkingScratch() {
  const ScratchSizes z = ScratchBound(config_, options_);
  ForwardScratch& s = *scratch_;
  for (const auto& [buffer, bytes] : std::initializer_list<std::pair<DeviceBuffer*, int64_t>>{
           {&s.ints, z.ints}, {&s.x, z.x}, {&s.xn, z.xn}, {&s.qkv, z.qkv}, {&s.q_local, z.q_local},
           {&s.attn, z.attn}, {&s.gu, z.gu}, {&s.h, z.h}, {&s.last, z.last}, {&s.last_n, z.last_n},
           {&s.logits, z.logits}, {&s.decode_blocks, z.decode_blocks}, {&s.scores, z.attention.scores},
           {&s.chunks, z.attention.chunks}, {&s.prefill_ws, z.attention.prefill_ws}}) {
    HR_RETURN_IF_ERROR(buffer->Reserve(bytes));
  }
  return absl::OkStatus();
}

int64_t CudaLlamaModel::scratch_bytes() const {
  const ForwardScratch& s = *scratch_;
  int64_t sum = 0;
  for (const DeviceBuffer* b : {&s.ints, &s.x, &s.xn, &s.qkv, &s.q_local, &s.attn, &s.gu, &s.h, &s.last, &s.last_n,
                                &s.logits, &s.decode_blocks, &s.scores, &s.chunks, &s.prefill_ws, &s.decode_ws}) {
    sum += b->bytes();
  }
  return sum;
}

CudaLlamaModel::CudaLlamaModel(const ModelConfig& config, const CudaModelOptions& options)
    : config_(config), options_(options) {}

CudaLlamaModel::~CudaLlamaModel() {
  if (stream_ != nullptr) {
    cudaStreamSynchronize(AsStream(stream_));
    cudaStreamDestroy(AsStream(stream_));
  }
}

absl::Status CudaLlamaModel::EnsureRopeSteps(int64_t n_steps) {
  if (rope_ != nullptr && rope_->n_steps() >= n_steps) return absl::OkStatus();
  if (stream_ != nullptr) cudaStreamSynchronize(AsStream(stream_));  // kernels may read the old tables
  rope_.reset();
  HR_CUDA_OK(cuda::RopeTables::Create(config_.head_dim, config_.rope_theta, config_.rope_linear_scale,
                                      config_.rope_style, options_.chunk_size, n_steps, &rope_),
             "RopeTables::Create");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CudaSequence>> CudaLlamaModel::NewSequence(const LongContextParams& params,
                                                                          int64_t capacity_tokens) {
  HR_RETURN_IF_ERROR(params.Validate());
  if (params.chunk_size != options_.chunk_size) {
    return absl::InvalidArgumentError(absl::StrCat("chunk_size ", params.chunk_size,
                                                   " differs from the CUDA KV cache's ", options_.chunk_size));
  }
  if (capacity_tokens <= 0) return absl::InvalidArgumentError("capacity_tokens must be > 0");
  const int64_t max_chunks = (capacity_tokens + params.chunk_size - 1) / params.chunk_size;
  const int64_t longest_list =
      params.policy == AttentionPolicy::kFull ? max_chunks : std::min<int64_t>(max_chunks, params.slots());
  HR_RETURN_IF_ERROR(EnsureRopeSteps(longest_list));
  return CudaSequence::Create(cache_.get(), params, capacity_tokens);
}

absl::Status CudaLlamaModel::Forward(std::span<const CudaBatchEntry> batch, std::vector<float>* logits) {
  const ModelConfig& c = config_;
  const int64_t dim = c.dim;
  // Validate and lay out the batch: entry e owns token rows [offset[e], offset[e+1]).
  std::vector<int64_t> offset(batch.size() + 1, 0);
  int64_t n_logit_rows = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    const CudaBatchEntry& entry = batch[e];
    if (entry.tokens.empty() || entry.sequence == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("batch entry ", e, " has no tokens"));
    }
    if (entry.sequence->cache() != cache_.get()) {
      return absl::InvalidArgumentError(absl::StrCat("batch entry ", e, ": sequence of another model"));
    }
    for (size_t f = 0; f < e; ++f) {
      if (batch[f].sequence == entry.sequence) {
        return absl::InvalidArgumentError(absl::StrCat("batch entries ", f, " and ", e, ": same sequence"));
      }
    }
    for (int32_t t : entry.tokens) {
      if (t < 0 || t >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", t, " outside the vocabulary [0, ", c.vocab_size, ")"));
      }
    }
    offset[e + 1] = offset[e] + static_cast<int64_t>(entry.tokens.size());
    n_logit_rows += entry.all_logits ? static_cast<int64_t>(entry.tokens.size()) : 1;
  }
  const int64_t n = offset.back();
  for (const CudaBatchEntry& entry : batch) {
    HR_RETURN_IF_ERROR(entry.sequence->Reserve(static_cast<int64_t>(entry.tokens.size()), stream_));
  }
  // Decode steps (a few tokens each) put their block lists in rows of one
  // batch-wide buffer, as long as the longest, and attend together (RunLayer).
  int32_t decode_stride = 0;
  int64_t decode_rows = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    const int64_t tokens = offset[e + 1] - offset[e];
    if (tokens > kDecodeMaxQueries) continue;
    decode_stride = std::max(decode_stride, DecodeListStride(*batch[e].sequence, tokens));
    decode_rows += tokens;
  }

  // Host-side rows (ForwardScratch::ints): block tables | tokens | positions
  // | row blocks | logit rows.
  const int64_t w = options_.chunk_size;
  std::vector<int32_t> ints(kRowInts * n + n_logit_rows);
  for (size_t e = 0; e < batch.size(); ++e) {
    const CudaSequence& seq = *batch[e].sequence;
    const int32_t* table = seq.d_block_table();
    for (int64_t r = offset[e]; r < offset[e + 1]; ++r) {
      const int64_t pos = seq.length() + (r - offset[e]);
      std::memcpy(&ints[2 * r], &table, sizeof table);
      ints[2 * n + r] = batch[e].tokens[r - offset[e]];
      ints[3 * n + r] = static_cast<int32_t>(pos);
      ints[4 * n + r] = seq.blocks()[pos / w];
    }
  }
  int64_t row = kRowInts * n;
  for (size_t e = 0; e < batch.size(); ++e) {
    const int64_t first = batch[e].all_logits ? offset[e] : offset[e + 1] - 1;
    for (int64_t r = first; r < offset[e + 1]; ++r) ints[row++] = static_cast<int32_t>(r);
  }

  ForwardScratch& s = *scratch_;
  const int64_t mbytes = cuda::DTypeBytes(weights_->matrix_dtype());
  const int64_t q_width = c.n_heads * c.head_dim;
  const int64_t qkv_width = q_width + 2 * c.n_kv_heads * c.head_dim;
  HR_RETURN_IF_ERROR(s.ints.Reserve(static_cast<int64_t>(ints.size()) * 4));
  HR_RETURN_IF_ERROR(s.x.Reserve(n * dim * 4));
  HR_RETURN_IF_ERROR(s.xn.Reserve(n * dim * mbytes));
  HR_RETURN_IF_ERROR(s.qkv.Reserve(n * qkv_width * 4));
  HR_RETURN_IF_ERROR(s.q_local.Reserve(n * q_width * 4));
  HR_RETURN_IF_ERROR(s.attn.Reserve(n * q_width * mbytes));
  HR_RETURN_IF_ERROR(s.gu.Reserve(n * 2 * c.ffn_dim * mbytes));
  HR_RETURN_IF_ERROR(s.h.Reserve(n * c.ffn_dim * mbytes));
  HR_RETURN_IF_ERROR(s.last.Reserve(n_logit_rows * dim * 4));
  HR_RETURN_IF_ERROR(s.last_n.Reserve(n_logit_rows * dim * mbytes));
  HR_RETURN_IF_ERROR(s.logits.Reserve(n_logit_rows * c.vocab_size * 4));
  HR_RETURN_IF_ERROR(s.decode_blocks.Reserve(decode_rows * c.n_heads * decode_stride * 4));
  cudaStream_t stream = AsStream(stream_);
  HR_RETURN_IF_ERROR(CudaCall(cudaMemcpyAsync(s.ints.get(), ints.data(), ints.size() * 4,
                                              cudaMemcpyHostToDevice, stream),
                              "batch rows to the device"));

  cuda::EmbeddingParams ep;
  ep.d_table = weights_->tok_embd();
  ep.dtype = cuda::DType::kF32;
  ep.d_tokens = s.ints.as<int32_t>() + 2 * n;
  ep.n_tokens = n;
  ep.vocab = c.vocab_size;
  ep.dim = dim;
  ep.d_out = s.x.as<float>();
  ep.stream = stream_;
  HR_CUDA_OK(cuda::Embedding(ep), "Embedding");

  for (int64_t l = 0; l < c.n_layers; ++l) {
    HR_RETURN_IF_ERROR(RunLayer(l, batch, offset, decode_stride));
  }

  // Final norm and LM head over the rows whose logits were asked for.
  HR_CUDA_OK(backend_cuda::GatherRows(s.x.as<float>(), s.ints.as<int32_t>() + kRowInts * n, n_logit_rows, dim,
                                      s.last.as<float>(), stream_),
             "GatherRows");
  if (mbytes == 4) {
    HR_CUDA_OK(cuda::RmsNorm({s.last.as<float>(), weights_->output_norm(), s.last_n.as<float>(), n_logit_rows,
                              dim, c.rms_eps, stream_}),
               "RmsNorm (output)");
  } else {
    HR_CUDA_OK(backend_cuda::RmsNormToBf16(s.last.as<float>(), weights_->output_norm(), s.last_n.get(),
                                           n_logit_rows, dim, c.rms_eps, stream_),
               "RmsNorm (output)");
  }
  cuda::GemmParams gp;
  gp.d_a = s.last_n.get();
  gp.d_b = weights_->output();
  gp.d_c = s.logits.get();
  gp.m = n_logit_rows;
  gp.n = c.vocab_size;
  gp.k = dim;
  gp.ab_dtype = weights_->matrix_dtype();
  gp.stream = stream_;
  HR_CUDA_OK(cuda::Gemm(gp), "Gemm (LM head)");
  logits->resize(n_logit_rows * c.vocab_size);
  HR_RETURN_IF_ERROR(CudaCall(cudaMemcpyAsync(logits->data(), s.logits.get(), logits->size() * 4,
                                              cudaMemcpyDeviceToHost, stream),
                              "logits to the host"));
  HR_RETURN_IF_ERROR(CudaCall(cudaStreamSynchronize(stream), "Forward"));
  for (const CudaBatchEntry& entry : batch) entry.sequence->Commit(static_cast<int64_t>(entry.tokens.size()));
  return absl::OkStatus();
}

absl::Status CudaLlamaModel::RunLayer(int64_t l, std::span<const CudaBatchEntry> batch,
                                      std::span<const int64_t> offset, int32_t decode_stride) {
  const ModelConfig& c = config_;
  const DeviceLayerWeights& lw = weights_->layer(l);
  ForwardScratch& s = *scratch_;
  const int64_t n = offset.back();
  const int64_t dim = c.dim;
  const int64_t q_width = c.n_heads * c.head_dim;
  const int64_t kv_width = c.n_kv_heads * c.head_dim;
  const int64_t qkv_width = q_width + 2 * kv_width;
  const cuda::DType mdt = weights_->matrix_dtype();
  const bool bf16 = mdt == cuda::DType::kBF16;
  const auto* d_row_tables = reinterpret_cast<const int32_t* const*>(s.ints.get());
  const int32_t* d_positions = s.ints.as<int32_t>() + 3 * n;
  const int32_t* d_row_blocks = s.ints.as<int32_t>() + 4 * n;

  const auto norm = [&](const float* weight, const char* what) -> absl::Status {
    if (!bf16) {
      HR_CUDA_OK(cuda::RmsNorm({s.x.as<float>(), weight, s.xn.as<float>(), n, dim, c.rms_eps, stream_}), what);
    } else {
      HR_CUDA_OK(backend_cuda::RmsNormToBf16(s.x.as<float>(), weight, s.xn.get(), n, dim, c.rms_eps, stream_),
                 what);
    }
    return absl::OkStatus();
  };
  // out is F32 (the residual stream, the QKV rows) unless out_dtype says so.
  const auto gemm = [&](const void* a, const void* b, void* out, int64_t out_cols, int64_t k, float beta,
                        const char* what, cuda::DType out_dtype = cuda::DType::kF32) -> absl::Status {
    cuda::GemmParams gp;
    gp.d_a = a;
    gp.d_b = b;
    gp.d_c = out;
    gp.m = n;
    gp.n = out_cols;
    gp.k = k;
    gp.ab_dtype = mdt;
    gp.c_dtype = out_dtype;
    gp.beta = beta;
    gp.stream = stream_;
    HR_CUDA_OK(cuda::Gemm(gp), what);
    return absl::OkStatus();
  };

  // Attention block.
  HR_RETURN_IF_ERROR(norm(lw.attn_norm.as<float>(), "RmsNorm (attention)"));
  HR_RETURN_IF_ERROR(gemm(s.xn.get(), lw.wqkv.get(), s.qkv.get(), qkv_width, dim, 0.0f, "Gemm (qkv)"));
  cuda::KvAppendParams kp;
  kp.kv = cache_->Layer(l);
  kp.d_k = s.qkv.as<float>() + q_width;
  kp.d_v = s.qkv.as<float>() + q_width + kv_width;
  kp.row_stride = qkv_width;
  kp.d_row_positions = d_positions;
  kp.d_row_blocks = d_row_blocks;
  kp.n_tokens = n;
  kp.rope = rope_.get();
  // The same launch rotates the queries out of the QKV rows by their offset
  // in the chunk (local RoPE) into q_local.
  kp.d_q = s.qkv.as<float>();
  kp.q_stride = qkv_width;
  kp.d_q_out = s.q_local.as<float>();
  kp.q_out_stride = q_width;
  kp.n_q_heads = c.n_heads;
  kp.stream = stream_;
  HR_CUDA_OK(cuda::KvAppend(kp), "KvAppend");
  // Summaries, prefill steps' attention, and the decode steps that select
  // their own rows, a sequence at a time.
  const auto decode = [&](size_t e) { return offset[e + 1] - offset[e] <= kDecodeMaxQueries; };
  const auto own_selection = [&](size_t e) {
    return SelectsOwnDecodeRows(batch[e].sequence->params(), offset[e + 1] - offset[e]);
  };
  int64_t decode_row = 0;
  for (size_t e = 0; e < batch.size(); ++e) {
    AttentionStepArgs a;
    a.layer = l;
    a.config = &config_;
    a.sequence = batch[e].sequence;
    a.cache = cache_.get();
    a.rope = rope_.get();
    a.n_tokens = offset[e + 1] - offset[e];
    a.d_q_raw = s.qkv.as<float>() + offset[e] * qkv_width;  // the raw queries stay in the QKV rows
    a.q_raw_stride = qkv_width;
    a.d_q_local = s.q_local.as<float>() + offset[e] * q_width;
    a.d_out = cuda::AdvanceElems(s.attn.get(), mdt, offset[e] * q_width);
    a.out_dtype = mdt;
    a.decode_max_queries = kDecodeMaxQueries;
    if (decode(e)) {
      if (own_selection(e)) {
        a.d_decode_blocks = s.decode_blocks.as<int32_t>() + decode_row * c.n_heads * decode_stride;
        a.decode_stride = decode_stride;
      }
      decode_row += a.n_tokens;
    }
    a.scratch = &s;
    a.stream = stream_;
    HR_RETURN_IF_ERROR(RunAttentionStep(a));
  }
  // Decode steps, per run of consecutive decode entries: their rows' block
  // lists in rows of the batch's lists (one selection per sub-run of
  // sequences with the same selection rules, skipping the steps that
  // selected their own), then one attention launch for the run.
  decode_row = 0;
  for (size_t e0 = 0; e0 < batch.size();) {
    if (!decode(e0)) {
      ++e0;
      continue;
    }
    size_t e1 = e0 + 1;
    while (e1 < batch.size() && decode(e1)) ++e1;
    int32_t* d_blocks = s.decode_blocks.as<int32_t>() + decode_row * c.n_heads * decode_stride;
    for (size_t f0 = e0; f0 < e1;) {
      if (own_selection(f0)) {
        ++f0;
        continue;
      }
      const LongContextParams& params = batch[f0].sequence->params();
      DecodeSelectArgs sa;
      size_t f1 = f0;
      for (; f1 < e1 && !own_selection(f1) && SameDecodeSelection(params, batch[f1].sequence->params()); ++f1) {
        const int64_t last = (batch[f1].sequence->length() + offset[f1 + 1] - offset[f1] - 1) / params.chunk_size;
        sa.last_chunk = std::max(sa.last_chunk, static_cast<int32_t>(last));
        sa.scored = sa.scored || NeedsScores(params, last);
      }
      sa.config = &config_;
      sa.params = &params;
      sa.summaries = cache_->Summaries(l);
      sa.n_queries = offset[f1] - offset[f0];
      sa.d_q_raw = s.qkv.as<float>() + offset[f0] * qkv_width;
      sa.q_raw_stride = qkv_width;
      sa.rows = cuda::DecodeRows{d_positions + offset[f0], d_row_tables + offset[f0]};
      sa.d_blocks = d_blocks + (offset[f0] - offset[e0]) * c.n_heads * decode_stride;
      sa.stride = decode_stride;
      sa.scratch = &s;
      sa.stream = stream_;
      HR_RETURN_IF_ERROR(SelectDecodeRows(sa));
      f0 = f1;
    }
    DecodeRowsArgs d;
    d.kv = cache_->Layer(l);
    d.rope = rope_.get();
    d.n_queries = offset[e1] - offset[e0];
    d.n_heads = c.n_heads;
    d.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    d.d_q_local = s.q_local.as<float>() + offset[e0] * q_width;
    d.d_positions = d_positions + offset[e0];
    d.d_blocks = d_blocks;
    d.stride = decode_stride;
    d.d_out = cuda::AdvanceElems(s.attn.get(), mdt, offset[e0] * q_width);
    d.out_dtype = mdt;
    d.scratch = &s;
    d.stream = stream_;
    HR_RETURN_IF_ERROR(AttendDecodeRows(d));
    decode_row += d.n_queries;
    e0 = e1;
  }
  // The attention wrote its rows in the matrix dtype: the output GEMM reads them as they are.
  HR_RETURN_IF_ERROR(gemm(s.attn.get(), lw.wo.get(), s.x.get(), dim, q_width, 1.0f, "Gemm (attention out)"));

  // MLP block.
  HR_RETURN_IF_ERROR(norm(lw.ffn_norm.as<float>(), "RmsNorm (ffn)"));
  // gate|up in the matrix dtype: SwiGLU reads half the bytes with BF16 weights.
  HR_RETURN_IF_ERROR(
      gemm(s.xn.get(), lw.w_gate_up.get(), s.gu.get(), 2 * c.ffn_dim, dim, 0.0f, "Gemm (gate|up)", mdt));
  HR_CUDA_OK(backend_cuda::SwiGluRows(s.gu.get(), mdt, n, c.ffn_dim, s.h.get(), stream_), "SwiGluRows");
  HR_RETURN_IF_ERROR(gemm(s.h.get(), lw.w_down.get(), s.x.get(), dim, c.ffn_dim, 1.0f, "Gemm (down)"));
  return absl::OkStatus();
}

}  // namespace hr
