#!/usr/bin/env python3
"""Independent float64 numpy reference for SeqPE GPT-2 models (issue 8).

Written from docs/reference/algorithms.md §2 and the official code
(github.com/ghrua/seqpe: SequentialPE in sequential_pe.py, PeUtils in
pe_utils.py, GPT2Attention / GPT2Model in modeling_gpt2.py), not from the C++.
Everything runs on a state dict in the OFFICIAL layout:

  main model (GPT2LMHeadModel): transformer.wte.weight [V, C],
    transformer.h.N.{ln_1, ln_2}.{weight, bias},
    transformer.h.N.attn.c_attn.{weight [C, 3C], bias},   (Conv1D: [in, out])
    transformer.h.N.attn.c_proj.{weight [C, C], bias},
    transformer.h.N.mlp.c_fc.{weight [C, F], bias}, transformer.h.N.mlp.c_proj.{weight [F, C], bias},
    transformer.ln_f.{weight, bias}, transformer.pe_qk.{weight [2P, P], bias} (nn.Linear),
    lm_head.weight [V, C] (tied to wte; may be absent)
  position encoder (SequentialPE): token_of_seqpe_embed.weight [10, E],
    pos_of_seqpe_embed.weight [D, E], cls_token_embed [1, 1, E],
    transformers.N.{layernorm_1, layernorm_2}.{weight, bias},
    transformers.N.attn.{c_attn, c_proj}.*, transformers.N.mlp.{c_fc, c_proj}.* (Conv1D),
    layernorm.{weight, bias} (with SEQPE_LAST_LAYERNORM), out_proj.{weight [P, E], bias} (nn.Linear)
  pe_config: the official yacs keys (PE_APPLY_METHOD, SEQPE_MAX_DIGITS, ...).

Semantics reproduced (eval mode, dropout off):
  PE(p): str(p) left-padded with '0' to SEQPE_MAX_DIGITS digit tokens, token + slot
    embeddings, CLS appended last, pre-LN blocks with causal (tril) or bi mask,
    padding masked only with SEQPE_MASK_PADDING (additive finfo.min as the official
    code), optional final LayerNorm, out_proj of the CLS row / SEQPE_TEMPERATURE.
  attn_scalar: pe = pe_qk(PE) (USE_PE_QK_PER_LAYER single) or cat(PE, PE) (none),
    reshaped (N, 2, n_head, -1) with n_head = H if USE_PE_MULTI_HEAD else 1;
    scores = (q k^T + s * pq pk^T) / sqrt(head_dim), causal, softmax.
  input_add: h0 = wte[token] + PE(p).
  official cached decode (the bug of algorithms.md §2.6): at a decode step the
    bias is pq(t)·pk(t) of the current position only, broadcast over every key.

Modes:
  seqpe_ref.py eval MODEL_DIR REQUEST_JSON OUT_DIR
      MODEL_DIR in the project's format (server/model/seqpe/seqpe_loader.h),
      read with this file's own safetensors reader and mapped to the official
      layout; REQUEST_JSON {"tokens": [...], "pe_positions": [...],
      "decode_prefix": k}. Writes raw little-endian float32:
        pe.bin [n_pe, P]: PE(p) for pe_positions; pq.bin, pk.bin [n_pe, P]
        (attn_scalar: the per-position vectors before the head split);
        bias.bin [n_head, N, N]: s·pq_h(i)·pk_h(j)/sqrt(head_dim) for
        positions 0..N-1 (attn_scalar); logits.bin [N, V];
        official_decode.bin [N - k, V]: the official cached decode after a
        k-token prefill; manifest.json.
  seqpe_ref.py longctx MODEL_DIR REQUEST_JSON OUT_DIR
      Long-context policies over an attn_scalar model (gpt2_longctx below):
      REQUEST_JSON {"tokens": [...], "configs": [{"name", "policy" (full,
      window, longheads), "chunk_size", "atten_length", "summary" (bound,
      mean, longheads)}]}; writes <name>.bin logits [N, V], <name>.sel.json
      chunk lists [layer][head][position], manifest.json (smallest relative
      score gap that decided a ranking).
  seqpe_ref.py OUT_DIR   (or: convert-test OUT_DIR)
      Conversion check: random models in the official layout (a torch .pt main
      state dict and a safetensors encoder state dict, HF config.json with
      pe_config, pe_config.json, train_args.json), converted by
      tools/seqpe/convert_checkpoint.py into OUT_DIR/<variant>/converted; writes
      the logits of this file's forward on the official layout and manifest.json.
      Needs torch (for the .pt file); without it the manifest says "skipped".
"""

import json
import math
import os
import struct
import subprocess
import sys

import numpy as np

# ---------------------------------------------------------------------------
# Safetensors (own reader and writer; numpy only)
# ---------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[base + b:base + e]
        if info["dtype"] == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------
# Layers (float64)
# ---------------------------------------------------------------------------

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def conv1d(x, sd, prefix):  # GPT-2 Conv1D: weight [in, out]
    return x @ sd[prefix + ".weight"] + sd[prefix + ".bias"]


def linear(x, sd, prefix):  # nn.Linear: weight [out, in]
    return x @ sd[prefix + ".weight"].T + sd[prefix + ".bias"]


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------
# The position encoder (SequentialPE)
# ---------------------------------------------------------------------------

def pos2seq(p, max_digits):
    """PeUtils.pos2seq with left padding: 42 -> [0,0,0,4,2], pad mask [0,0,0,1,1]."""
    s = str(int(p))
    if len(s) > max_digits:
        raise ValueError("position %d needs %d digits, the encoder has %d" % (p, len(s), max_digits))
    nz = max_digits - len(s)
    return [0] * nz + [int(c) for c in s], [0] * nz + [1] * len(s)


def encoder_forward(sd, pc, positions):
    D = pc["SEQPE_MAX_DIGITS"]
    He = pc["NUM_ATTENTION_HEADS"]
    eps = pc.get("LAYER_NORM_EPSILON", 1e-5)
    seqs, pads = zip(*[pos2seq(p, D) for p in positions])
    seqs, pads = np.array(seqs), np.array(pads, dtype=np.float64)
    B = len(positions)
    x = sd["token_of_seqpe_embed.weight"][seqs] + sd["pos_of_seqpe_embed.weight"][np.arange(D)][None]
    cls = np.broadcast_to(sd["cls_token_embed"].reshape(1, 1, -1), (B, 1, x.shape[-1]))
    x = np.concatenate([x, cls], axis=1)  # [B, T, E]
    T, E = x.shape[1], x.shape[2]
    hd = E // He
    if pc["SEQPE_ATTN_DIRECTION"] == "bi":
        mask = np.ones((B, T, T))
    else:
        mask = np.broadcast_to(np.tril(np.ones((T, T))), (B, T, T)).copy()
    if pc["SEQPE_MASK_PADDING"]:
        full_pad = np.concatenate([pads, np.ones((B, 1))], axis=1)
        mask = mask * full_pad[:, None, :]
    add_mask = np.finfo(np.float64).min * (1.0 - mask)  # official: mask_value * (1 - mask)
    i = 0
    while ("transformers.%d.layernorm_1.weight" % i) in sd:
        p = "transformers.%d." % i
        a = layer_norm(x, sd[p + "layernorm_1.weight"], sd[p + "layernorm_1.bias"], eps)
        qkv = conv1d(a, sd, p + "attn.c_attn")
        q, k, v = np.split(qkv, 3, axis=-1)
        q = q.reshape(B, T, He, hd).transpose(0, 2, 1, 3)
        k = k.reshape(B, T, He, hd).transpose(0, 2, 1, 3)
        v = v.reshape(B, T, He, hd).transpose(0, 2, 1, 3)
        w = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + add_mask[:, None]
        o = (softmax(w) @ v).transpose(0, 2, 1, 3).reshape(B, T, E)
        x = x + conv1d(o, sd, p + "attn.c_proj")
        m = layer_norm(x, sd[p + "layernorm_2.weight"], sd[p + "layernorm_2.bias"], eps)
        x = x + conv1d(gelu_new(conv1d(m, sd, p + "mlp.c_fc")), sd, p + "mlp.c_proj")
        i += 1
    if pc["SEQPE_LAST_LAYERNORM"]:
        x = layer_norm(x, sd["layernorm.weight"], sd["layernorm.bias"], eps)
    return linear(x[:, -1], sd, "out_proj") * (1.0 / pc["SEQPE_TEMPERATURE"])


# ---------------------------------------------------------------------------
# The GPT-2 main model
# ---------------------------------------------------------------------------

def pe_qk_vectors(sd, cfg, pc, pe):
    """attn_scalar: (pq, pk), each [n_head, N, dh], from PE rows [N, P]."""
    C = cfg["n_embd"]
    if pc["USE_PE_QK_PER_LAYER"] == "single":
        pe2 = linear(pe, sd, "transformer.pe_qk")
    elif pe.shape[-1] == C:
        pe2 = np.concatenate([pe, pe], axis=-1)
    else:
        pe2 = pe
    n_head = cfg["n_head"] if pc["USE_PE_MULTI_HEAD"] else 1
    N = pe.shape[0]
    pe2 = pe2.reshape(N, 2, n_head, -1).transpose(1, 2, 0, 3)
    return pe2[0], pe2[1]


def attn_bias(sd, cfg, pc, pe):
    """[n_head, N, N] = s · pq pkᵀ / sqrt(head_dim) (what adds to the scaled logits)."""
    pq, pk = pe_qk_vectors(sd, cfg, pc, pe)
    d = cfg["n_embd"] // cfg["n_head"]
    return pc["SEQPE_SCALAR_SCALE"] * (pq @ pk.transpose(0, 2, 1)) / math.sqrt(d)


def _block(sd, cfg, i, h, past_k, past_v, bias_fn):
    """One GPT-2 block over new rows h [n, C] given cached K/V [H, m, d]
    (m = tokens before them). bias_fn(n_keys) -> [n_head or 1, n, n_keys] or None,
    added to q·kᵀ before the 1/sqrt(d) scale (eager form)."""
    C, H = cfg["n_embd"], cfg["n_head"]
    d = C // H
    eps = cfg["layer_norm_epsilon"]
    p = "transformer.h.%d." % i
    a = layer_norm(h, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
    q, k, v = np.split(conv1d(a, sd, p + "attn.c_attn"), 3, axis=-1)
    n = h.shape[0]
    q = q.reshape(n, H, d).transpose(1, 0, 2)
    k = np.concatenate([past_k, k.reshape(n, H, d).transpose(1, 0, 2)], axis=1)
    v = np.concatenate([past_v, v.reshape(n, H, d).transpose(1, 0, 2)], axis=1)
    m = k.shape[1]
    w = q @ k.transpose(0, 2, 1)
    b = bias_fn(m)
    if b is not None:
        w = w + b
    w = w / math.sqrt(d)
    first = m - n
    causal = np.arange(m)[None, :] <= (first + np.arange(n))[:, None]
    w = np.where(causal[None], w, -np.inf)
    o = (softmax(w) @ v).transpose(1, 0, 2).reshape(n, C)
    h = h + conv1d(o, sd, p + "attn.c_proj")
    mm = layer_norm(h, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
    h = h + conv1d(gelu_new(conv1d(mm, sd, p + "mlp.c_fc")), sd, p + "mlp.c_proj")
    return h, k, v


def _head(sd, cfg, h):
    h = layer_norm(h, sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"],
                   cfg["layer_norm_epsilon"])
    out = sd.get("lm_head.weight", sd["transformer.wte.weight"])
    return h @ out.T


def gpt2_run(sd, sd_pe, cfg, pc, tokens, prefix=None, official_decode=False, use_bias=True):
    """Logits [N, V] for tokens at positions 0..N-1.

    prefix None: one full forward. Otherwise `prefix` tokens in one call, then
    one token per call with a KV cache: correct (bias over every cached key) or,
    with official_decode, the official code's cached decode."""
    N = len(tokens)
    H, C = cfg["n_head"], cfg["n_embd"]
    d = C // H
    pe = encoder_forward(sd_pe, pc, list(range(N)))
    method = pc["PE_APPLY_METHOD"]
    scalar = method == "attn_scalar" and use_bias
    if scalar:
        pq, pk = pe_qk_vectors(sd, cfg, pc, pe)
        s = pc["SEQPE_SCALAR_SCALE"]
    L = cfg["n_layer"]
    ks = [np.zeros((H, 0, d)) for _ in range(L)]
    vs = [np.zeros((H, 0, d)) for _ in range(L)]
    runs = [(0, N)] if prefix is None else [(0, prefix)] + [(t, t + 1) for t in range(prefix, N)]
    logits = []
    for (r0, r1) in runs:
        h = sd["transformer.wte.weight"][np.array(tokens[r0:r1])]
        if method == "input_add":
            h = h + pe[r0:r1]
        decode_step = prefix is not None and r0 >= prefix

        def bias_fn(m, r0=r0, r1=r1, decode_step=decode_step):
            if not scalar:
                return None
            if official_decode and decode_step:
                # bias of the current position only: [n_head, 1, 1], broadcast
                return s * (pq[:, r0:r1] @ pk[:, r0:r1].transpose(0, 2, 1))
            return s * (pq[:, r0:r1] @ pk[:, :m].transpose(0, 2, 1))

        for i in range(L):
            h, ks[i], vs[i] = _block(sd, cfg, i, h, ks[i], vs[i], bias_fn)
        logits.append(_head(sd, cfg, h))
    return np.concatenate(logits, axis=0)


# ---------------------------------------------------------------------------
# Long-context policies over SeqPE (LongHeads selection, bias at slot positions)
# ---------------------------------------------------------------------------

def select_chunks(policy, c, k, scores):
    """Chunk list of a query in chunk c (server/longctx/paged_sequence.h rules)."""
    if policy == "full" or c < k:
        return list(range(c + 1))
    if policy == "window":
        return [0] + list(range(c - k + 2, c + 1))
    cand = sorted(range(1, c - 1), key=lambda j: (-scores[j], j))
    return [0] + sorted(cand[:k - 3]) + [c - 1, c]


def chunk_summary(kind, q, k, v):
    """Summary of one complete chunk for one head (raw keys: SeqPE has no RoPE)."""
    d = k.shape[-1]
    if kind == "bound":
        return (k.min(0), k.max(0))
    if kind == "mean":
        return k.mean(0)
    p = softmax(q @ k.T / math.sqrt(d))  # bidirectional inside the chunk
    qbar = (p @ v).mean(0)
    return softmax(qbar @ k.T / math.sqrt(d)) @ k


def score_chunk(kind, q, summary):
    if kind == "bound":
        mn, mx = summary
        return float(np.maximum(q * mx, q * mn).sum())
    return float(q @ summary)


def gpt2_longctx(sd, sd_pe, cfg, pc, tokens, policy, w, atten_length, kind):
    """Logits [N, V], chunk lists {(layer, head, pos): list}, and the smallest
    score gap that decided a ranking (relative), for one prefill of all tokens
    with per-token selection. Written from the spec: gather the selected
    chunks' raw keys, place chunk list[s] at window positions s*w + u', the
    query at m = (len(list) - 1)*w + u, add s*pq(m)·pk(pos)/sqrt(d)."""
    N = len(tokens)
    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    d = C // H
    eps = cfg["layer_norm_epsilon"]
    k_slots = atten_length // w
    max_pos = N - 1 if policy == "full" else min(N - 1, k_slots * w - 1)
    pe = encoder_forward(sd_pe, pc, list(range(max_pos + 1)))
    pq, pk = pe_qk_vectors(sd, cfg, pc, pe)  # [n_head, positions, dh]
    s = pc["SEQPE_SCALAR_SCALE"]
    multi = pq.shape[0] > 1
    h = sd["transformer.wte.weight"][np.array(tokens)]
    lists, min_gap = {}, float("inf")
    for layer in range(L):
        p_ = "transformer.h.%d." % layer
        a = layer_norm(h, sd[p_ + "ln_1.weight"], sd[p_ + "ln_1.bias"], eps)
        q, k, v = [x.reshape(N, H, d) for x in np.split(conv1d(a, sd, p_ + "attn.c_attn"), 3, axis=-1)]
        summaries = {}
        for j in range(N // w):
            for hh in range(H):
                sl = slice(j * w, (j + 1) * w)
                summaries[j, hh] = chunk_summary(kind, q[sl, hh], k[sl, hh], v[sl, hh])
        o = np.zeros((N, H, d))
        for p in range(N):
            c, u = p // w, p % w
            for hh in range(H):
                scores = {}
                if policy == "longheads" and c >= k_slots:
                    scores = {j: score_chunk(kind, q[p, hh], summaries[j, hh]) for j in range(1, c - 1)}
                    ranked = sorted(scores.values(), reverse=True)
                    n_keep = k_slots - 3
                    if 0 < n_keep < len(ranked):  # a ranking decides the list
                        gap = (ranked[n_keep - 1] - ranked[n_keep]) / max(1.0, abs(ranked[n_keep - 1]))
                        min_gap = min(min_gap, gap)
                chunks = select_chunks(policy, c, k_slots, scores)
                lists[layer, hh, p] = chunks
                keys, vals, kpos = [], [], []
                for slot, ch in enumerate(chunks):
                    n_keys = u + 1 if ch == c else w
                    keys.append(k[ch * w:ch * w + n_keys, hh])
                    vals.append(v[ch * w:ch * w + n_keys, hh])
                    kpos += [slot * w + t for t in range(n_keys)]
                keys, vals = np.concatenate(keys), np.concatenate(vals)
                m = (len(chunks) - 1) * w + u
                hb = hh if multi else 0
                logit = (keys @ q[p, hh] + s * (pk[hb, kpos] @ pq[hb, m])) / math.sqrt(d)
                o[p, hh] = softmax(logit) @ vals
        h = h + conv1d(o.reshape(N, C), sd, p_ + "attn.c_proj")
        mm = layer_norm(h, sd[p_ + "ln_2.weight"], sd[p_ + "ln_2.bias"], eps)
        h = h + conv1d(gelu_new(conv1d(mm, sd, p_ + "mlp.c_fc")), sd, p_ + "mlp.c_proj")
    return _head(sd, cfg, h), lists, min_gap


def longctx_mode(model_dir, request_path, out_dir):
    with open(request_path) as f:
        req = json.load(f)
    sd, sd_pe, cfg, pc = project_to_official(model_dir)
    tokens = req["tokens"]
    os.makedirs(out_dir, exist_ok=True)
    manifest = {"configs": {}}
    for c in req["configs"]:
        logits, lists, gap = gpt2_longctx(sd, sd_pe, cfg, pc, tokens, c["policy"], c["chunk_size"],
                                          c["atten_length"], c["summary"])
        if c["policy"] == "full":  # self-check: full is plain causal attention
            assert np.abs(logits - gpt2_run(sd, sd_pe, cfg, pc, tokens)).max() < 1e-9
        write_f32(os.path.join(out_dir, c["name"] + ".bin"), logits)
        sel = [[[lists[l, hh, p] for p in range(len(tokens))] for hh in range(cfg["n_head"])]
               for l in range(cfg["n_layer"])]
        with open(os.path.join(out_dir, c["name"] + ".sel.json"), "w") as f:
            json.dump(sel, f)
        manifest["configs"][c["name"]] = {"min_rank_gap": gap if gap != float("inf") else None}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


# ---------------------------------------------------------------------------
# The project's format -> the official layout (eval mode)
# ---------------------------------------------------------------------------

def project_to_official(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    pe_c, enc = c["seqpe"], c["seqpe"]["encoder"]
    assert c["architecture"] == "gpt2_seqpe" and c.get("activation", "gelu_tanh") == "gelu_tanh"
    assert enc.get("base", 10) == 10
    cfg = {"n_embd": c["dim"], "n_head": c["n_heads"], "n_layer": c["n_layers"],
           "vocab_size": c["vocab_size"], "layer_norm_epsilon": c.get("layer_norm_eps", 1e-5)}
    pc = {"PE_APPLY_METHOD": pe_c["apply"],
          "USE_PE_QK_PER_LAYER": pe_c.get("qk_proj", "none"),
          "USE_PE_MULTI_HEAD": pe_c.get("multi_head", False),
          "SEQPE_SCALAR_SCALE": pe_c.get("scalar_scale", 1.0),
          "SEQPE_MAX_DIGITS": enc["max_digits"], "NUM_ATTENTION_HEADS": enc["n_heads"],
          "SEQPE_ATTN_DIRECTION": enc.get("attn_direction", "causal"),
          "SEQPE_MASK_PADDING": enc.get("mask_padding", False),
          "SEQPE_LAST_LAYERNORM": enc.get("final_layernorm", True),
          "LAYER_NORM_EPSILON": enc.get("layer_norm_eps", 1e-5),
          "SEQPE_TEMPERATURE": enc.get("temperature", 1.0)}
    sd, sd_pe = {}, {}

    def block(dst, dst_prefix, src_prefix, names):
        ln1, ln2 = names
        for part in ("weight", "bias"):
            dst[dst_prefix + ln1 + "." + part] = t.pop(src_prefix + "attn_norm." + part)
            dst[dst_prefix + ln2 + "." + part] = t.pop(src_prefix + "ffn_norm." + part)
        for ours, theirs in (("attn_qkv", "attn.c_attn"), ("attn_out", "attn.c_proj"),
                             ("ffn_up", "mlp.c_fc"), ("ffn_down", "mlp.c_proj")):
            dst[dst_prefix + theirs + ".weight"] = t.pop(src_prefix + ours + ".weight").T
            dst[dst_prefix + theirs + ".bias"] = t.pop(src_prefix + ours + ".bias")

    sd["transformer.wte.weight"] = t.pop("tok_embd.weight")
    for i in range(cfg["n_layer"]):
        block(sd, "transformer.h.%d." % i, "blk.%d." % i, ("ln_1", "ln_2"))
    sd["transformer.ln_f.weight"] = t.pop("output_norm.weight")
    sd["transformer.ln_f.bias"] = t.pop("output_norm.bias")
    if not c.get("tied_embeddings", True):
        sd["lm_head.weight"] = t.pop("output.weight")
    if "seqpe.pe_qk.weight" in t:
        sd["transformer.pe_qk.weight"] = t.pop("seqpe.pe_qk.weight")
        sd["transformer.pe_qk.bias"] = t.pop("seqpe.pe_qk.bias")
    sd_pe["token_of_seqpe_embed.weight"] = t.pop("seqpe.digit_embd.weight")
    sd_pe["pos_of_seqpe_embed.weight"] = t.pop("seqpe.slot_embd.weight")
    sd_pe["cls_token_embed"] = t.pop("seqpe.cls").reshape(1, 1, -1)
    for i in range(enc["n_layers"]):
        block(sd_pe, "transformers.%d." % i, "seqpe.blk.%d." % i, ("layernorm_1", "layernorm_2"))
    if pc["SEQPE_LAST_LAYERNORM"]:
        sd_pe["layernorm.weight"] = t.pop("seqpe.output_norm.weight")
        sd_pe["layernorm.bias"] = t.pop("seqpe.output_norm.bias")
    sd_pe["out_proj.weight"] = t.pop("seqpe.out_proj.weight")
    sd_pe["out_proj.bias"] = t.pop("seqpe.out_proj.bias")
    assert not t, "tensors the config does not use: %s" % sorted(t)
    return sd, sd_pe, cfg, pc


def write_f32(path, arr):
    np.ascontiguousarray(arr, dtype="<f4").tofile(path)


def eval_mode(model_dir, request_path, out_dir):
    with open(request_path) as f:
        req = json.load(f)
    sd, sd_pe, cfg, pc = project_to_official(model_dir)
    tokens, prefix = req["tokens"], req["decode_prefix"]
    os.makedirs(out_dir, exist_ok=True)
    pe = encoder_forward(sd_pe, pc, req["pe_positions"])
    write_f32(os.path.join(out_dir, "pe.bin"), pe)
    full = gpt2_run(sd, sd_pe, cfg, pc, tokens)
    write_f32(os.path.join(out_dir, "logits.bin"), full)
    # Self-checks: causality (a correct cached decode is the full forward).
    cached = gpt2_run(sd, sd_pe, cfg, pc, tokens, prefix=prefix)
    assert np.abs(cached - full).max() < 1e-9, "reference cached decode != full forward"
    official = gpt2_run(sd, sd_pe, cfg, pc, tokens, prefix=prefix, official_decode=True)
    write_f32(os.path.join(out_dir, "official_decode.bin"), official[prefix:])
    manifest = {"n_tokens": len(tokens), "vocab": cfg["vocab_size"], "n_pe": len(req["pe_positions"]),
                "pe_dim": int(pe.shape[1])}
    if pc["PE_APPLY_METHOD"] == "attn_scalar":
        pq, pk = pe_qk_vectors(sd, cfg, pc, pe)  # [n_head, n_pe, dh]
        write_f32(os.path.join(out_dir, "pq.bin"), pq.transpose(1, 0, 2).reshape(len(pe), -1))
        write_f32(os.path.join(out_dir, "pk.bin"), pk.transpose(1, 0, 2).reshape(len(pe), -1))
        pe_seq = encoder_forward(sd_pe, pc, list(range(len(tokens))))
        bias = attn_bias(sd, cfg, pc, pe_seq)
        write_f32(os.path.join(out_dir, "bias.bin"), bias)
        manifest["bias_heads"] = int(bias.shape[0])
        # The bias matters (else the comparisons below would prove little), and
        # the official cached decode loses it.
        nobias = gpt2_run(sd, sd_pe, cfg, pc, tokens, use_bias=False)
        manifest["max_effect_of_bias"] = float(np.abs(nobias - full).max())
        manifest["max_official_decode_error"] = float(np.abs(official[prefix:] - full[prefix:]).max())
        assert manifest["max_effect_of_bias"] > 0.05, manifest
        assert manifest["max_official_decode_error"] > 0.01, manifest
    else:
        assert np.abs(official - full).max() < 1e-9  # input_add has no decode bug
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


# ---------------------------------------------------------------------------
# Conversion check (random official-layout checkpoints -> converter)
# ---------------------------------------------------------------------------

CONVERT_VARIANTS = {
    # name: (main config, pe_config overrides)
    "attn_scalar": (dict(vocab_size=53, n_embd=32, n_head=4, n_layer=2, n_inner=None),
                    dict(PE_APPLY_METHOD="attn_scalar", USE_PE_QK_PER_LAYER="single",
                         USE_PE_MULTI_HEAD=True, PE_OUT_PROJ_DIM=16, PE_EMBED_DIM=24,
                         NUM_ATTENTION_HEADS=3, SEQPE_SCALAR_SCALE=0.8, SEQPE_TEMPERATURE=1.1,
                         PE_MAX_POSITION=1000, SEQPE_MAX_DIGITS=3)),
    "input_add": (dict(vocab_size=47, n_embd=24, n_head=3, n_layer=2, n_inner=40),
                  dict(PE_APPLY_METHOD="input_add", USE_PE_QK_PER_LAYER="none",
                       USE_PE_MULTI_HEAD=False, PE_OUT_PROJ_DIM=24, PE_EMBED_DIM=16,
                       NUM_ATTENTION_HEADS=2, SEQPE_ATTN_DIRECTION="bi", SEQPE_MASK_PADDING=True,
                       SEQPE_LAST_LAYERNORM=False, PE_MAX_POSITION=100, SEQPE_MAX_DIGITS=2)),
}

BASE_PE_CONFIG = {
    "MODEL": {}, "PE_TYPE": "seq_pe", "PE_DATA_DIM": 1, "SEQPE_ACTIVATION_FUNCTION": "gelu_new",
    "SEQPE_ATTN_DIRECTION": "causal", "SEQPE_MASK_PADDING": False, "SEQPE_LAST_LAYERNORM": True,
    "SEQPE_LAYER_NUM": 2, "SEQPE_SCALAR_SCALE": 1.0, "SEQPE_SCALE_ATTN_WEIGHTS": True,
    "SEQPE_TEMPERATURE": 1.0, "SEQPE_ADD_OUT_PROJ": True, "SEQPE_INIT_NORM_WEIGHT": 1.0,
    "SEQPE_RESID_PDROP": 0.1, "SEQPE_ATTN_PDROP": 0.0,
}


def random_official(rng, cfg, pc):
    C, V, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_layer"]
    F = cfg["n_inner"] or 4 * C
    E, P, D = pc["PE_EMBED_DIM"], pc["PE_OUT_PROJ_DIM"], pc["SEQPE_MAX_DIGITS"]

    def mat(*shape, std=0.15):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def ln(dst, prefix, dim):
        dst[prefix + ".weight"] = (1.0 + rng.normal(0, 0.1, dim)).astype(np.float32)
        dst[prefix + ".bias"] = mat(dim, std=0.1)

    def conv(dst, prefix, n_in, n_out):
        dst[prefix + ".weight"] = mat(n_in, n_out)
        dst[prefix + ".bias"] = mat(n_out, std=0.05)

    sd = {"transformer.wte.weight": mat(V, C, std=0.3)}
    for i in range(L):
        p = "transformer.h.%d." % i
        ln(sd, p + "ln_1", C)
        conv(sd, p + "attn.c_attn", C, 3 * C)
        conv(sd, p + "attn.c_proj", C, C)
        ln(sd, p + "ln_2", C)
        conv(sd, p + "mlp.c_fc", C, F)
        conv(sd, p + "mlp.c_proj", F, C)
    ln(sd, "transformer.ln_f", C)
    if pc["USE_PE_QK_PER_LAYER"] == "single":
        sd["transformer.pe_qk.weight"] = mat(2 * P, P, std=0.3)
        sd["transformer.pe_qk.bias"] = mat(2 * P, std=0.1)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied, as GPT2LMHeadModel
    sd_pe = {"token_of_seqpe_embed.weight": mat(10, E, std=0.5),
             "pos_of_seqpe_embed.weight": mat(D, E, std=0.5),
             "cls_token_embed": mat(1, 1, E, std=0.5)}
    for i in range(pc["SEQPE_LAYER_NUM"]):
        p = "transformers.%d." % i
        ln(sd_pe, p + "layernorm_1", E)
        conv(sd_pe, p + "attn.c_attn", E, 3 * E)
        conv(sd_pe, p + "attn.c_proj", E, E)
        ln(sd_pe, p + "layernorm_2", E)
        conv(sd_pe, p + "mlp.c_fc", E, 4 * E)
        conv(sd_pe, p + "mlp.c_proj", 4 * E, E)
    if pc["SEQPE_LAST_LAYERNORM"]:
        ln(sd_pe, "layernorm", E)
    sd_pe["out_proj.weight"] = mat(P, E, std=0.3)
    sd_pe["out_proj.bias"] = mat(P, std=0.1)
    return sd, sd_pe


def yacs_dump(pc):
    lines = []
    for k in sorted(pc):
        v = pc[k]
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif v is None:
            v = "null"
        elif isinstance(v, dict):
            v = "{}"
        lines.append("%s: %s" % (k, v))
    return "\n".join(lines) + "\n"


def convert_test(out_dir, converter):
    os.makedirs(out_dir, exist_ok=True)
    try:
        import torch
    except ImportError as e:  # the C++ test skips with this reason
        with open(os.path.join(out_dir, "manifest.json"), "w") as f:
            json.dump({"skipped": "python3 cannot import torch: %s" % e}, f)
        return
    rng = np.random.default_rng(20250806)
    manifest = {"variants": {}}
    for name, (cfg_over, pc_over) in CONVERT_VARIANTS.items():
        cfg = {"layer_norm_epsilon": 1e-5}
        cfg.update(cfg_over)
        pc = dict(BASE_PE_CONFIG)
        pc.update(pc_over)
        sd, sd_pe = random_official(rng, cfg, pc)
        ckpt = os.path.join(out_dir, name, "ckpt")
        best = os.path.join(ckpt, "best_model")
        os.makedirs(best, exist_ok=True)
        # accelerate save_state layout: model (GPT2LMHeadModel) and model_1 (SequentialPE).
        torch.save({k: torch.from_numpy(v.copy()) for k, v in sd.items()},
                   os.path.join(best, "pytorch_model.bin"))
        write_safetensors(os.path.join(best, "model_1.safetensors"), sd_pe)
        hf = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
              "activation_function": "gelu_new", "vocab_size": cfg["vocab_size"],
              "n_embd": cfg["n_embd"], "n_head": cfg["n_head"], "n_layer": cfg["n_layer"],
              "n_inner": cfg["n_inner"], "n_positions": 1024, "n_ctx": 1024,
              "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
              "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
              "pe_config": pc}
        with open(os.path.join(ckpt, "config.json"), "w") as f:
            json.dump(hf, f, indent=1)
        with open(os.path.join(ckpt, "pe_config.json"), "w") as f:
            f.write(yacs_dump(pc))
        with open(os.path.join(ckpt, "train_args.json"), "w") as f:
            json.dump({"block_size": 64}, f)
        converted = os.path.join(out_dir, name, "converted")
        subprocess.run([sys.executable, converter, "--checkpoint", best, "--out", converted],
                       check=True)
        tokens = [int(t) for t in rng.integers(0, cfg["vocab_size"], 30)]
        sd64 = {k: v.astype(np.float64) for k, v in sd.items()}
        pe64 = {k: v.astype(np.float64) for k, v in sd_pe.items()}
        logits = gpt2_run(sd64, pe64, cfg, pc, tokens)
        write_f32(os.path.join(out_dir, name, "logits.bin"), logits)
        # Self-check: this file's own reading of the converted directory gives
        # the official layout back (the same float32 values).
        sd2, pe2, cfg2, pc2 = project_to_official(converted)
        again = gpt2_run(sd2, pe2, cfg2, pc2, tokens)
        assert np.abs(again - logits).max() < 1e-9, (name, np.abs(again - logits).max())
        manifest["variants"][name] = {"path": name + "/converted", "tokens": tokens,
                                      "vocab": cfg["vocab_size"], "logits": name + "/logits.bin"}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    converter = os.path.join(here, "..", "..", "tools", "seqpe", "convert_checkpoint.py")
    if len(argv) == 5 and argv[1] == "eval":
        eval_mode(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "longctx":
        longctx_mode(argv[2], argv[3], argv[4])
    elif len(argv) == 3 and argv[1] == "convert-test":
        convert_test(argv[2], converter)
    elif len(argv) == 2:
        convert_test(argv[1], converter)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
