#include "tests/model_files/gguf_writer.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <utility>

namespace hr::testing {

uint32_t GgmlTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return kGgmlF32;
    case DType::kF16:
      return kGgmlF16;
    case DType::kQ8_0:
      return kGgmlQ8_0;
    case DType::kBF16:
      return kGgmlBF16;
  }
  return kGgmlF32;
}

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutF32(std::string& out, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  PutU32(out, bits);
}
void PutGgufString(std::string& out, std::string_view s) {
  PutU64(out, s.size());
  out.append(s.data(), s.size());
}

namespace {
void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}
}  // namespace

std::string EncodeTensorData(DType dtype, const std::vector<float>& values) {
  std::string out;
  switch (dtype) {
    case DType::kF32:
      for (float v : values) PutF32(out, v);
      break;
    case DType::kF16:
      for (float v : values) PutU16(out, F32ToF16(v));
      break;
    case DType::kBF16:
      for (float v : values) {
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        const uint32_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);  // nearest even
        PutU16(out, static_cast<uint16_t>(rounded >> 16));
      }
      break;
    case DType::kQ8_0:
      for (size_t b = 0; b + kQ8_0BlockSize <= values.size(); b += kQ8_0BlockSize) {
        float amax = 0.0f;
        for (int64_t j = 0; j < kQ8_0BlockSize; ++j) amax = std::max(amax, std::fabs(values[b + j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        PutU16(out, F32ToF16(d));
        for (int64_t j = 0; j < kQ8_0BlockSize; ++j) {
          out.push_back(static_cast<char>(static_cast<int8_t>(std::roundf(values[b + j] * id))));
        }
      }
      break;
  }
  return out;
}

void GgufWriter::AddRaw(std::string key, uint32_t type, std::string encoded) {
  kvs_.push_back({std::move(key), type, std::move(encoded)});
}
void GgufWriter::AddU8(std::string key, uint8_t v) { AddRaw(std::move(key), kGgufU8, std::string(1, static_cast<char>(v))); }
void GgufWriter::AddU32(std::string key, uint32_t v) {
  std::string e;
  PutU32(e, v);
  AddRaw(std::move(key), kGgufU32, e);
}
void GgufWriter::AddI32(std::string key, int32_t v) {
  std::string e;
  PutU32(e, static_cast<uint32_t>(v));
  AddRaw(std::move(key), kGgufI32, e);
}
void GgufWriter::AddU64(std::string key, uint64_t v) {
  std::string e;
  PutU64(e, v);
  AddRaw(std::move(key), kGgufU64, e);
}
void GgufWriter::AddI64(std::string key, int64_t v) {
  std::string e;
  PutU64(e, static_cast<uint64_t>(v));
  AddRaw(std::move(key), kGgufI64, e);
}
void GgufWriter::AddF32(std::string key, float v) {
  std::string e;
  PutF32(e, v);
  AddRaw(std::move(key), kGgufF32, e);
}
void GgufWriter::AddF64(std::string key, double v) {
  std::string e;
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  PutU64(e, bits);
  AddRaw(std::move(key), kGgufF64, e);
}
void GgufWriter::AddBool(std::string key, bool v) { AddRaw(std::move(key), kGgufBool, std::string(1, v ? 1 : 0)); }
void GgufWriter::AddString(std::string key, std::string_view v) {
  std::string e;
  PutGgufString(e, v);
  AddRaw(std::move(key), kGgufString, e);
}
void GgufWriter::AddStringArray(std::string key, const std::vector<std::string>& v) {
  std::string e;
  PutU32(e, kGgufString);
  PutU64(e, v.size());
  for (const std::string& s : v) PutGgufString(e, s);
  AddRaw(std::move(key), kGgufArray, e);
}
void GgufWriter::AddF32Array(std::string key, const std::vector<float>& v) {
  std::string e;
  PutU32(e, kGgufF32);
  PutU64(e, v.size());
  for (float x : v) PutF32(e, x);
  AddRaw(std::move(key), kGgufArray, e);
}
void GgufWriter::AddI32Array(std::string key, const std::vector<int32_t>& v) {
  std::string e;
  PutU32(e, kGgufI32);
  PutU64(e, v.size());
  for (int32_t x : v) PutU32(e, static_cast<uint32_t>(x));
  AddRaw(std::move(key), kGgufArray, e);
}

void GgufWriter::AddTensor(std::string name, std::vector<uint64_t> dims, uint32_t ggml_type,
                           std::string data, std::optional<uint64_t> offset_override) {
  tensors_.push_back({std::move(name), std::move(dims), ggml_type, std::move(data), offset_override});
}

void GgufWriter::AddTensorF32(std::string name, std::vector<uint64_t> dims,
                              const std::vector<float>& values) {
  AddTensor(std::move(name), std::move(dims), kGgmlF32, EncodeTensorData(DType::kF32, values));
}

std::string GgufWriter::Build(GgufLayout* layout) const {
  GgufLayout local;
  GgufLayout& l = layout != nullptr ? *layout : local;
  l = GgufLayout();
  const uint64_t align = alignment_ == 0 ? 1 : alignment_;
  auto align_up = [&](uint64_t x) { return (x + align - 1) / align * align; };

  // Data offsets (relative to the data section).
  std::vector<uint64_t> rel(tensors_.size());
  uint64_t cursor = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    cursor = align_up(cursor);
    rel[i] = cursor;
    cursor += tensors_[i].data.size();
  }

  std::string out = "GGUF";
  PutU32(out, version_);
  PutU64(out, tensors_.size());
  PutU64(out, kvs_.size());
  for (const Kv& kv : kvs_) {
    l.kv_offsets.push_back(out.size());
    PutGgufString(out, kv.key);
    PutU32(out, kv.type);
    l.kv_value_offsets.push_back(out.size());
    out += kv.encoded;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    l.tensor_info_offsets.push_back(out.size());
    PutGgufString(out, t.name);
    l.tensor_dims_offsets.push_back(out.size());
    PutU32(out, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) PutU64(out, d);
    l.tensor_type_offsets.push_back(out.size());
    PutU32(out, t.type);
    l.tensor_offset_offsets.push_back(out.size());
    PutU64(out, t.offset_override.value_or(rel[i]));
  }
  l.header_end = out.size();
  l.data_start = align_up(out.size());
  out.resize(l.data_start, '\0');
  for (size_t i = 0; i < tensors_.size(); ++i) {
    out.resize(l.data_start + rel[i], '\0');
    l.tensor_data_offsets.push_back(out.size());
    out += tensors_[i].data;
  }
  return out;
}

std::vector<float> PseudoRandom(uint64_t seed, size_t n) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    v[i] = static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
  }
  return v;
}

ModelConfig TinyLlamaConfig() {
  ModelConfig c;
  c.dim = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 32;
  c.vocab_size = 40;
  c.trained_context = 64;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  return c;
}

void AddLlamaGguf(GgufWriter& w, const ModelConfig& c, uint64_t seed,
                  const LlamaGgufOptions& options) {
  w.AddString("general.architecture", "llama");
  w.AddString("general.name", "tiny-test");
  w.AddU32("llama.context_length", static_cast<uint32_t>(c.trained_context));
  w.AddU32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  w.AddU32("llama.block_count", static_cast<uint32_t>(options.block_count.value_or(c.n_layers)));
  w.AddU32("llama.feed_forward_length", static_cast<uint32_t>(c.ffn_dim));
  w.AddU32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.AddU32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.AddU32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.AddF32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
  w.AddF32("llama.rope.freq_base", c.rope_theta);
  if (c.rope_linear_scale != 1.0f) {
    w.AddString("llama.rope.scaling.type", "linear");
    w.AddF32("llama.rope.scaling.factor", c.rope_linear_scale);
  }
  if (options.with_tokenizer) {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (int64_t i = 0; i < c.vocab_size; ++i) {
      if (i == 0) {
        tokens.push_back("<unk>");
        types.push_back(2);
      } else if (i == 1) {
        tokens.push_back("<s>");
        types.push_back(3);
      } else if (i == 2) {
        tokens.push_back("</s>");
        types.push_back(3);
      } else {
        tokens.push_back(std::string(1, static_cast<char>('a' + (i - 3) % 26)) +
                         std::to_string((i - 3) / 26));
        types.push_back(1);
      }
      scores.push_back(-static_cast<float>(i));
    }
    w.AddString("tokenizer.ggml.model", "llama");
    w.AddStringArray("tokenizer.ggml.tokens", tokens);
    w.AddF32Array("tokenizer.ggml.scores", scores);
    w.AddI32Array("tokenizer.ggml.token_type", types);
    w.AddU32("tokenizer.ggml.bos_token_id", 1);
    w.AddU32("tokenizer.ggml.eos_token_id", 2);
    w.AddU32("tokenizer.ggml.unknown_token_id", 0);
  }

  uint64_t n = 0;
  auto add = [&](const std::string& name, std::vector<uint64_t> dims, bool is_norm) {
    ++n;
    if (name == options.skip_tensor) return;
    size_t count = 1;
    for (uint64_t d : dims) count *= d;
    std::vector<float> values = PseudoRandom(seed + n, count);
    if (is_norm) {
      for (float& v : values) v = 1.0f + 0.1f * v;
    }
    if (name == options.reshape_tensor) {
      if (dims.size() == 2 && dims[0] != dims[1]) {
        std::swap(dims[0], dims[1]);
      } else {
        dims[0] += 1;
        values.resize(values.size() / (dims[0] - 1) * dims[0], 0.5f);
      }
    }
    const DType dtype = is_norm ? DType::kF32 : options.dtype;
    w.AddTensor(name, dims, GgmlTypeOf(dtype), EncodeTensorData(dtype, values));
  };
  const uint64_t dim = c.dim, q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim,
                 ffn = c.ffn_dim, vocab = c.vocab_size;
  add("token_embd.weight", {dim, vocab}, false);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", {dim}, true);
    add(p + "attn_q.weight", {dim, q}, false);
    add(p + "attn_k.weight", {dim, kv}, false);
    add(p + "attn_v.weight", {dim, kv}, false);
    add(p + "attn_output.weight", {q, dim}, false);
    add(p + "ffn_norm.weight", {dim}, true);
    add(p + "ffn_gate.weight", {dim, ffn}, false);
    add(p + "ffn_up.weight", {dim, ffn}, false);
    add(p + "ffn_down.weight", {ffn, dim}, false);
  }
  add("output_norm.weight", {dim}, true);
  if (options.with_output) add("output.weight", {dim, vocab}, false);
}

bool WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return false;
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace hr::testing
