#!/usr/bin/env python3
"""Tiny random LLaMA models, their files and reference logits for the C++ tests.

Usage: tiny_llama.py OUTPUT_DIR

Writes, from one set of random weights per model (fixed seeds):
  * Hugging Face directories (config.json, two safetensors shards and
    model.safetensors.index.json; NeoX-halves RoPE, PyTorch [out, in] weights)
    in F32, BF16 and F16;
  * GGUF v3 files (architecture `llama`, adjacent-pair RoPE, Q/K rows permuted
    exactly as llama.cpp's convert_hf_to_gguf.py does) in F32, F16 and Q8_0;
  * the logits of an independent float64 numpy forward pass for a few token
    sequences at every position, one raw little-endian float32 file
    [n_tokens, vocab] per (variant, sequence); for the F16/BF16/Q8_0 variants
    the reference runs on the dequantized weights, so every comparison is exact
    up to floating-point error;
  * manifest.json describing all of it (see `main`).

Before writing the manifest the script checks itself (assert): every file is
read back with a separate small reader, and a second numpy forward pass on the
GGUF tensors (permuted Q/K, adjacent-pair RoPE) must give the same logits as the
Hugging Face forward pass (NeoX RoPE) to 1e-10 (relative), which validates the
permutation and both writers.

Only python3 and numpy (Debian's python3-numpy) are needed.
"""

import json
import os
import struct
import sys

import numpy as np

# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------

# dim and ffn are multiples of 32 so that every matrix row can be Q8_0 blocks.
BASE_CONFIG = dict(
    dim=96,
    n_layers=3,
    n_heads=6,
    n_kv_heads=2,  # GQA 3:1
    head_dim=16,
    ffn_dim=160,
    vocab_size=300,
    rms_eps=1e-5,
    rope_theta=10000.0,
    rope_linear_scale=1.0,
    context_length=256,
    tied=False,
)

MODELS = {
    # name: (config overrides, seed)
    "base": (dict(), 1234),
    "linear_rope": (dict(rope_linear_scale=2.0, rope_theta=500.0), 99),
    "tied": (dict(tied=True, n_layers=2), 7),
}

# Which file variants each model gets: (format, dtype).
VARIANTS = {
    "base": [("hf", "F32"), ("hf", "BF16"), ("hf", "F16"),
             ("gguf", "F32"), ("gguf", "F16"), ("gguf", "Q8_0")],
    "linear_rope": [("hf", "F32"), ("gguf", "F32")],
    "tied": [("hf", "F32"), ("gguf", "F32")],
}

SEQUENCE_LENGTHS = [40, 25, 17]
TOKEN_SEED = 2024


def make_weights(cfg, seed):
    """Random weights in Hugging Face convention: name -> float32 array."""
    rng = np.random.default_rng(seed)
    d, f, v = cfg["dim"], cfg["ffn_dim"], cfg["vocab_size"]
    hq = cfg["n_heads"] * cfg["head_dim"]
    hk = cfg["n_kv_heads"] * cfg["head_dim"]

    def lin(out_f, in_f, gain=1.0):
        return (rng.standard_normal((out_f, in_f)) * gain / np.sqrt(in_f)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    # Tied: the embedding is also the output head, scaled so that the logits
    # stay O(1) as in the untied models (element-wise relative tolerances are
    # meaningless for near-zero logits among ones of size 50).
    embd_std = 1.0 / np.sqrt(d) if cfg["tied"] else 1.0
    w = {"model.embed_tokens.weight":
         (rng.standard_normal((v, d)) * embd_std).astype(np.float32)}
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(d)
        # Unit gains: attention scores of order 1, far enough from uniform for
        # RoPE and masking mistakes to show in the logits (RoPE theta or style
        # changes move them by O(1)), soft enough that float32 rounding stays
        # well inside the tests' tolerance (gain 2 tripled it).
        w[p + "self_attn.q_proj.weight"] = lin(hq, d)
        w[p + "self_attn.k_proj.weight"] = lin(hk, d)
        w[p + "self_attn.v_proj.weight"] = lin(hk, d)
        w[p + "self_attn.o_proj.weight"] = lin(d, hq)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = lin(f, d)
        w[p + "mlp.up_proj.weight"] = lin(f, d)
        w[p + "mlp.down_proj.weight"] = lin(d, f)
    w["model.norm.weight"] = norm(d)
    if not cfg["tied"]:
        w["lm_head.weight"] = lin(v, d)
    return w


# ----------------------------------------------------------------------------
# Number formats
# ----------------------------------------------------------------------------

def f32_to_bf16_bits(x):
    """Round to nearest even, as torch's float32 -> bfloat16 conversion."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


Q8_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "i1", (32,))])  # 34 bytes


def quantize_q8_0(x):
    """ggml's quantize_row_q8_0_ref: per 32 values d = amax/127 (stored as
    fp16), q = roundf(x / d) computed with the float32 d. Returns the blocks."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    assert x.shape[-1] % 32 == 0, x.shape
    blocks = x.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    inv = np.zeros_like(d)
    nz = d != 0
    inv[nz] = (np.float32(1.0) / d[nz]).astype(np.float32)
    scaled = (blocks * inv[:, None]).astype(np.float32)
    q = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))  # roundf: half away from 0
    out = np.zeros(blocks.shape[0], dtype=Q8_0_BLOCK)
    out["d"] = d.astype(np.float16)
    out["qs"] = np.clip(q, -127, 127).astype(np.int8)
    return out


def dequantize_q8_0(blocks, shape):
    vals = blocks["d"].astype(np.float32)[:, None] * blocks["qs"].astype(np.float32)
    return vals.astype(np.float32).reshape(shape)


def encode(x, dtype):
    """float32 array -> (raw bytes, float32 values those bytes decode to)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "F32":
        return x.astype("<f4").tobytes(), x.copy()
    if dtype == "F16":
        h = x.astype("<f2")
        return h.tobytes(), h.astype(np.float32)
    if dtype == "BF16":
        b = f32_to_bf16_bits(x).astype("<u2")
        return b.tobytes(), bf16_bits_to_f32(b).reshape(x.shape)
    if dtype == "Q8_0":
        q = quantize_q8_0(x)
        return q.tobytes(), dequantize_q8_0(q, x.shape)
    raise ValueError(dtype)


# ----------------------------------------------------------------------------
# Safetensors / Hugging Face directory
# ----------------------------------------------------------------------------

def write_safetensors(path, tensors):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header, offset = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)  # the HF writer pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for _, _, _, raw in tensors:
            f.write(raw)
    return offset


def hf_config_json(cfg, dtype):
    c = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": cfg["dim"],
        "num_hidden_layers": cfg["n_layers"],
        "num_attention_heads": cfg["n_heads"],
        "num_key_value_heads": cfg["n_kv_heads"],
        "intermediate_size": cfg["ffn_dim"],
        "vocab_size": cfg["vocab_size"],
        "rms_norm_eps": cfg["rms_eps"],
        "rope_theta": cfg["rope_theta"],
        "rope_scaling": None,
        "max_position_embeddings": cfg["context_length"],
        "tie_word_embeddings": cfg["tied"],
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype],
    }
    if cfg["rope_linear_scale"] != 1.0:
        c["rope_scaling"] = {"type": "linear", "rope_type": "linear",
                             "factor": cfg["rope_linear_scale"]}
    return c


def write_hf_dir(directory, cfg, weights, dtype):
    """Writes the directory; returns the dequantized HF weights."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(hf_config_json(cfg, dtype), f, indent=2)
    names = list(weights)
    # Two shards, interleaved so that a loader must follow the weight map.
    shards = {1: [], 2: []}
    for i, name in enumerate(names):
        shards[1 if i % 3 != 1 else 2].append(name)
    dequant, weight_map, total = {}, {}, 0
    for s, shard_names in shards.items():
        fname = f"model-{s:05d}-of-00002.safetensors"
        entries = []
        for name in shard_names:
            raw, values = encode(weights[name], dtype)
            dequant[name] = values
            entries.append((name, dtype, weights[name].shape, raw))
            weight_map[name] = fname
        total += write_safetensors(os.path.join(directory, fname), entries)
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return dequant


def read_safetensors(path):
    """Independent read-back (self-check): name -> float32 array."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        shape = info["shape"]
        if info["dtype"] == "F32":
            a = np.frombuffer(raw, "<f4")
        elif info["dtype"] == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            a = bf16_bits_to_f32(np.frombuffer(raw, "<u2"))
        else:
            raise ValueError(info["dtype"])
        out[name] = a.reshape(shape).astype(np.float32)
    return out


def read_hf_dir(directory):
    with open(os.path.join(directory, "model.safetensors.index.json")) as f:
        index = json.load(f)
    out = {}
    for fname in sorted(set(index["weight_map"].values())):
        out.update(read_safetensors(os.path.join(directory, fname)))
    assert set(out) == set(index["weight_map"]), "weight map and shards disagree"
    return out


# ----------------------------------------------------------------------------
# GGUF
# ----------------------------------------------------------------------------

GGUF_UINT32, GGUF_FLOAT32, GGUF_STRING = 4, 6, 8
GGML_TYPE = {"F32": 0, "F16": 1, "Q8_0": 8}
GGML_TYPE_NAME = {v: k for k, v in GGML_TYPE.items()}
GGUF_FILE_TYPE = {"F32": 0, "F16": 1, "Q8_0": 7}
GGUF_ALIGNMENT = 32


def permute_hf_to_gguf(w, n_head, n_head_kv=None):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute, verbatim logic:
    NeoX halves in each head -> interleaved pairs (adjacent-pair RoPE)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def hf_to_gguf_tensors(cfg, weights):
    """HF-named weights -> list of (GGUF name, array), in GGUF layout."""
    out = [("token_embd.weight", weights["model.embed_tokens.weight"])]
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        out += [
            (b + "attn_norm.weight", weights[p + "input_layernorm.weight"]),
            (b + "attn_q.weight", permute_hf_to_gguf(
                weights[p + "self_attn.q_proj.weight"], cfg["n_heads"], cfg["n_heads"])),
            (b + "attn_k.weight", permute_hf_to_gguf(
                weights[p + "self_attn.k_proj.weight"], cfg["n_heads"], cfg["n_kv_heads"])),
            (b + "attn_v.weight", weights[p + "self_attn.v_proj.weight"]),
            (b + "attn_output.weight", weights[p + "self_attn.o_proj.weight"]),
            (b + "ffn_norm.weight", weights[p + "post_attention_layernorm.weight"]),
            (b + "ffn_gate.weight", weights[p + "mlp.gate_proj.weight"]),
            (b + "ffn_up.weight", weights[p + "mlp.up_proj.weight"]),
            (b + "ffn_down.weight", weights[p + "mlp.down_proj.weight"]),
        ]
    out.append(("output_norm.weight", weights["model.norm.weight"]))
    if not cfg["tied"]:
        out.append(("output.weight", weights["lm_head.weight"]))
    return out


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, vtype, value):
    out = gguf_string(key) + struct.pack("<I", vtype)
    if vtype == GGUF_UINT32:
        out += struct.pack("<I", value)
    elif vtype == GGUF_FLOAT32:
        out += struct.pack("<f", value)
    elif vtype == GGUF_STRING:
        out += gguf_string(value)
    else:
        raise ValueError(vtype)
    return out


def write_gguf(path, cfg, weights, dtype):
    """Writes a GGUF v3 file (no tokenizer); returns the dequantized tensors
    by GGUF name. As convert_hf_to_gguf.py does, 1-D tensors stay F32."""
    kvs = [
        ("general.architecture", GGUF_STRING, "llama"),
        ("general.name", GGUF_STRING, "tiny-llama-test"),
        ("general.alignment", GGUF_UINT32, GGUF_ALIGNMENT),
        ("general.file_type", GGUF_UINT32, GGUF_FILE_TYPE[dtype]),
        ("llama.context_length", GGUF_UINT32, cfg["context_length"]),
        ("llama.embedding_length", GGUF_UINT32, cfg["dim"]),
        ("llama.block_count", GGUF_UINT32, cfg["n_layers"]),
        ("llama.feed_forward_length", GGUF_UINT32, cfg["ffn_dim"]),
        ("llama.rope.dimension_count", GGUF_UINT32, cfg["head_dim"]),
        ("llama.attention.head_count", GGUF_UINT32, cfg["n_heads"]),
        ("llama.attention.head_count_kv", GGUF_UINT32, cfg["n_kv_heads"]),
        ("llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT32, cfg["rms_eps"]),
        ("llama.rope.freq_base", GGUF_FLOAT32, cfg["rope_theta"]),
        ("llama.vocab_size", GGUF_UINT32, cfg["vocab_size"]),
    ]
    if cfg["rope_linear_scale"] != 1.0:
        kvs += [("llama.rope.scaling.type", GGUF_STRING, "linear"),
                ("llama.rope.scaling.factor", GGUF_FLOAT32, cfg["rope_linear_scale"])]

    tensors = hf_to_gguf_tensors(cfg, weights)
    infos, blobs, dequant, offset = b"", [], {}, 0
    for name, arr in tensors:
        tdtype = dtype if arr.ndim == 2 else "F32"
        raw, values = encode(arr, tdtype)
        dequant[name] = values
        dims = list(reversed(arr.shape))  # ggml order: dims[0] = in_features
        infos += gguf_string(name) + struct.pack("<I", len(dims))
        infos += b"".join(struct.pack("<Q", x) for x in dims)
        infos += struct.pack("<IQ", GGML_TYPE[tdtype], offset)
        pad = -len(raw) % GGUF_ALIGNMENT
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad

    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(gguf_kv(*kv) for kv in kvs) + infos
    head += b"\0" * (-len(head) % GGUF_ALIGNMENT)
    with open(path, "wb") as f:
        f.write(head)
        for blob in blobs:
            f.write(blob)
    return dequant


def read_gguf(path):
    """Independent read-back (self-check): (metadata, name -> float32 array
    in PyTorch shape)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    assert version == 3
    pos = 24

    def rd_string():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        s = data[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        return s

    meta = {}
    for _ in range(n_kv):
        key = rd_string()
        (vtype,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if vtype == GGUF_UINT32:
            (meta[key],) = struct.unpack_from("<I", data, pos)
            pos += 4
        elif vtype == GGUF_FLOAT32:
            (meta[key],) = struct.unpack_from("<f", data, pos)
            pos += 4
        elif vtype == GGUF_STRING:
            meta[key] = rd_string()
        else:
            raise ValueError(vtype)
    infos = []
    for _ in range(n_tensors):
        name = rd_string()
        (nd,) = struct.unpack_from("<I", data, pos)
        dims = struct.unpack_from(f"<{nd}Q", data, pos + 4)
        ttype, off = struct.unpack_from("<IQ", data, pos + 4 + 8 * nd)
        pos += 4 + 8 * nd + 12
        infos.append((name, dims, ttype, off))
    align = meta.get("general.alignment", 32)
    base = pos + (-pos % align)
    out = {}
    for name, dims, ttype, off in infos:
        assert off % align == 0
        shape = tuple(reversed(dims))
        n = int(np.prod(dims))
        start = base + off
        kind = GGML_TYPE_NAME[ttype]
        if kind == "F32":
            a = np.frombuffer(data, "<f4", n, start).astype(np.float32)
        elif kind == "F16":
            a = np.frombuffer(data, "<f2", n, start).astype(np.float32)
        else:
            a = dequantize_q8_0(np.frombuffer(data, Q8_0_BLOCK, n // 32, start), (n,))
        out[name] = a.reshape(shape)
    return meta, out


# ----------------------------------------------------------------------------
# The reference forward pass (float64, textbook)
# ----------------------------------------------------------------------------

def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, theta, scale, style):
    """x: [T, H, D]. Rotates channel pairs by angle pos/scale * theta^(-2i/D).
    neox: pairs (i, i + D/2) (HF rotate_half); adjacent: pairs (2i, 2i+1)."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = (np.asarray(positions, dtype=np.float64) / scale)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if style == "neox":
        a, b = x[..., : d // 2], x[..., d // 2:]
    else:
        a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = a * cos - b * sin, a * sin + b * cos
    out = np.empty_like(x)
    if style == "neox":
        out[..., : d // 2], out[..., d // 2:] = ra, rb
    else:
        out[..., 0::2], out[..., 1::2] = ra, rb
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(cfg, w, tokens, style):
    """Logits [T, vocab] at every position. `w` uses canonical names:
    embd, output_norm, output, and per layer a dict with attn_norm, wq, wk, wv,
    wo, ffn_norm, w_gate, w_up, w_down (all [out, in], float64)."""
    T = len(tokens)
    H, KV, D = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    group = H // KV
    pos = np.arange(T)
    x = w["embd"][np.asarray(tokens)]
    causal = np.tril(np.ones((T, T), dtype=bool))
    for L in w["layers"]:
        h = rms_norm(x, L["attn_norm"], cfg["rms_eps"])
        q = (h @ L["wq"].T).reshape(T, H, D)
        k = (h @ L["wk"].T).reshape(T, KV, D)
        v = (h @ L["wv"].T).reshape(T, KV, D)
        q = rope(q, pos, cfg["rope_theta"], cfg["rope_linear_scale"], style)
        k = rope(k, pos, cfg["rope_theta"], cfg["rope_linear_scale"], style)
        attn = np.empty((T, H, D))
        for hh in range(H):
            kv = hh // group  # query head hh reads KV head hh // (H / KV)
            s = (q[:, hh, :] @ k[:, kv, :].T) / np.sqrt(D)
            s = np.where(causal, s, -np.inf)
            s = s - s.max(axis=1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=1, keepdims=True)
            attn[:, hh, :] = p @ v[:, kv, :]
        x = x + attn.reshape(T, H * D) @ L["wo"].T
        h = rms_norm(x, L["ffn_norm"], cfg["rms_eps"])
        x = x + (silu(h @ L["w_gate"].T) * (h @ L["w_up"].T)) @ L["w_down"].T
    x = rms_norm(x, w["output_norm"], cfg["rms_eps"])
    return x @ w["output"].T


def canonical_from_hf(cfg, hf):
    g = lambda n: np.asarray(hf[n], dtype=np.float64)
    w = {"embd": g("model.embed_tokens.weight"), "output_norm": g("model.norm.weight"),
         "layers": []}
    w["output"] = g("model.embed_tokens.weight" if cfg["tied"] else "lm_head.weight")
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        w["layers"].append(dict(
            attn_norm=g(p + "input_layernorm.weight"),
            wq=g(p + "self_attn.q_proj.weight"), wk=g(p + "self_attn.k_proj.weight"),
            wv=g(p + "self_attn.v_proj.weight"), wo=g(p + "self_attn.o_proj.weight"),
            ffn_norm=g(p + "post_attention_layernorm.weight"),
            w_gate=g(p + "mlp.gate_proj.weight"), w_up=g(p + "mlp.up_proj.weight"),
            w_down=g(p + "mlp.down_proj.weight")))
    return w


def canonical_from_gguf(cfg, gg):
    g = lambda n: np.asarray(gg[n], dtype=np.float64)
    w = {"embd": g("token_embd.weight"), "output_norm": g("output_norm.weight"), "layers": []}
    w["output"] = g("token_embd.weight" if cfg["tied"] else "output.weight")
    for i in range(cfg["n_layers"]):
        b = f"blk.{i}."
        w["layers"].append(dict(
            attn_norm=g(b + "attn_norm.weight"), wq=g(b + "attn_q.weight"),
            wk=g(b + "attn_k.weight"), wv=g(b + "attn_v.weight"),
            wo=g(b + "attn_output.weight"), ffn_norm=g(b + "ffn_norm.weight"),
            w_gate=g(b + "ffn_gate.weight"), w_up=g(b + "ffn_up.weight"),
            w_down=g(b + "ffn_down.weight")))
    return w


def gguf_dequant_to_hf(cfg, gg):
    """Undoes the GGUF naming and the Q/K permutation (inverse permutation),
    so the NeoX reference can run on a GGUF variant's dequantized weights."""
    def unpermute(w, n_head):
        return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
                .swapaxes(1, 2).reshape(w.shape))
    hf = {"model.embed_tokens.weight": gg["token_embd.weight"],
          "model.norm.weight": gg["output_norm.weight"]}
    if not cfg["tied"]:
        hf["lm_head.weight"] = gg["output.weight"]
    for i in range(cfg["n_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        hf[p + "input_layernorm.weight"] = gg[b + "attn_norm.weight"]
        hf[p + "self_attn.q_proj.weight"] = unpermute(gg[b + "attn_q.weight"], cfg["n_heads"])
        hf[p + "self_attn.k_proj.weight"] = unpermute(gg[b + "attn_k.weight"], cfg["n_kv_heads"])
        hf[p + "self_attn.v_proj.weight"] = gg[b + "attn_v.weight"]
        hf[p + "self_attn.o_proj.weight"] = gg[b + "attn_output.weight"]
        hf[p + "post_attention_layernorm.weight"] = gg[b + "ffn_norm.weight"]
        hf[p + "mlp.gate_proj.weight"] = gg[b + "ffn_gate.weight"]
        hf[p + "mlp.up_proj.weight"] = gg[b + "ffn_up.weight"]
        hf[p + "mlp.down_proj.weight"] = gg[b + "ffn_down.weight"]
    return hf


def max_rel_diff(a, b):
    return float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))


# ----------------------------------------------------------------------------
# Self-checks of the reference itself
# ----------------------------------------------------------------------------

def check_rope_and_permutation():
    """The permutation maps NeoX-on-HF to adjacent-on-GGUF exactly, for a
    random projection, per head, with GQA head counts."""
    rng = np.random.default_rng(5)
    H, KV, D, dim, T = 6, 2, 16, 96, 9
    x = rng.standard_normal((T, dim))
    for n_head, n_kv in ((H, H), (H, KV)):
        heads = n_kv
        w = rng.standard_normal((heads * D, dim))
        wp = permute_hf_to_gguf(w, n_head, n_kv)
        a = rope((x @ w.T).reshape(T, heads, D), np.arange(T) + 3, 10000.0, 1.0, "neox")
        b = rope((x @ wp.T).reshape(T, heads, D), np.arange(T) + 3, 10000.0, 1.0, "adjacent")
        # Same rotated vectors, up to the within-head channel order
        # (halves -> interleaved), hence the same dot products.
        a_inter = np.stack([a[..., : D // 2], a[..., D // 2:]], axis=-1).reshape(a.shape)
        assert np.allclose(a_inter, b, rtol=0, atol=1e-12), "permutation/RoPE mismatch"
    # RoPE's relative property: q(m)·k(n) depends only on m - n.
    q, k = rng.standard_normal((1, 1, D)), rng.standard_normal((1, 1, D))
    for style in ("neox", "adjacent"):
        d1 = np.sum(rope(q, [7], 500.0, 2.0, style) * rope(k, [3], 500.0, 2.0, style))
        d2 = np.sum(rope(q, [14], 500.0, 2.0, style) * rope(k, [10], 500.0, 2.0, style))
        assert abs(d1 - d2) < 1e-12, (style, d1, d2)


# ----------------------------------------------------------------------------

def write_logits(path, logits):
    np.ascontiguousarray(logits, dtype="<f4").tofile(path)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    check_rope_and_permutation()

    rng = np.random.default_rng(TOKEN_SEED)
    sequences = []
    for n in SEQUENCE_LENGTHS:
        toks = rng.integers(0, BASE_CONFIG["vocab_size"], size=n)
        toks[n // 2] = toks[1]  # repeated tokens at different positions
        sequences.append([int(t) for t in toks])

    manifest = {"sequences": sequences, "models": {}, "variants": []}
    for model_name, (overrides, seed) in MODELS.items():
        cfg = dict(BASE_CONFIG, **overrides)
        assert cfg["dim"] == cfg["n_heads"] * cfg["head_dim"]
        manifest["models"][model_name] = cfg
        weights = make_weights(cfg, seed)
        for fmt, dtype in VARIANTS[model_name]:
            name = f"{model_name}_{fmt}_{dtype.lower()}"
            if fmt == "hf":
                rel = name
                path = os.path.join(out_dir, rel)
                dq = write_hf_dir(path, cfg, weights, dtype)
                back = read_hf_dir(path)
                assert set(back) == set(dq)
                for n in dq:
                    assert np.array_equal(back[n], dq[n]), (name, n)
                hf_w = dq
            else:
                rel = name + ".gguf"
                path = os.path.join(out_dir, rel)
                dq = write_gguf(path, cfg, weights, dtype)
                meta, back = read_gguf(path)
                assert meta["general.architecture"] == "llama"
                assert set(back) == set(dq)
                for n in dq:
                    assert np.array_equal(back[n], dq[n]), (name, n)
                hf_w = gguf_dequant_to_hf(cfg, dq)

            # Reference: NeoX RoPE on HF-convention (dequantized) weights.
            ref_w = canonical_from_hf(cfg, hf_w)
            logits_files = []
            for si, toks in enumerate(sequences):
                ref = forward(cfg, ref_w, toks, "neox")
                assert np.all(np.isfinite(ref))
                if fmt == "gguf":
                    # Self-check: the GGUF tensors as read back (permuted Q/K)
                    # with adjacent-pair RoPE give the same logits.
                    alt = forward(cfg, canonical_from_gguf(cfg, back), toks, "adjacent")
                    err = max_rel_diff(alt, ref)
                    assert err < 1e-10, f"{name}: GGUF path differs from HF path by {err}"
                fname = f"{name}.seq{si}.logits.f32"
                write_logits(os.path.join(out_dir, fname), ref)
                logits_files.append(fname)
            manifest["variants"].append({
                "name": name, "model": model_name, "format": fmt, "dtype": dtype,
                "path": rel, "rope_style": "neox" if fmt == "hf" else "adjacent",
                "logits": logits_files,
            })

        # Same weights, lossless files: the F32 references of HF and GGUF agree.
        f32 = [v for v in manifest["variants"]
               if v["model"] == model_name and v["dtype"] == "F32"]
        if len(f32) == 2:
            for a, b in zip(f32[0]["logits"], f32[1]["logits"]):
                la = np.fromfile(os.path.join(out_dir, a), "<f4")
                lb = np.fromfile(os.path.join(out_dir, b), "<f4")
                assert max_rel_diff(la, lb) < 1e-5, (a, b)

    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"tiny_llama: wrote {len(manifest['variants'])} variants to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
