#!/usr/bin/python3
"""Writes the demo model as a GGUF v3 `llama` file with its tokenizer.

    /usr/bin/python3 tools/demo_model/export_gguf.py RUN_DIR/checkpoint.pt OUT.gguf [--f32]

Matrices are F16 (F32 with --f32), 1-D norms F32. The model was trained with
RoPE on adjacent channel pairs, the GGUF convention, so Q/K need no
permutation. The output matrix is its own tensor (output.weight).
"""

import struct
import sys

import numpy as np

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_F16 = 0, 1
ALIGN = 32

# Long-context defaults measured for this model (tools/demo_model/README.md).
# Informational metadata: a loader may take them as the model's defaults.
LONGCTX_KEYS = {
    "headroom.long_context.atten_length": (GGUF_U32, 256),
    "headroom.long_context.chunk_size": (GGUF_U32, 32),
    "headroom.long_context.summary": (GGUF_STRING, "bound"),
}


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _kv(key, vtype, value):
    out = _str(key) + struct.pack("<I", vtype)
    if vtype == GGUF_U32:
        out += struct.pack("<I", value)
    elif vtype == GGUF_I32:
        out += struct.pack("<i", value)
    elif vtype == GGUF_F32:
        out += struct.pack("<f", value)
    elif vtype == GGUF_BOOL:
        out += struct.pack("<B", 1 if value else 0)
    elif vtype == GGUF_STRING:
        out += _str(value)
    elif vtype == GGUF_ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        if etype == GGUF_STRING:
            out += b"".join(_str(s) for s in items)
        elif etype == GGUF_F32:
            out += np.asarray(items, "<f4").tobytes()
        elif etype == GGUF_I32:
            out += np.asarray(items, "<i4").tobytes()
        else:
            raise ValueError(etype)
    else:
        raise ValueError(vtype)
    return out


def gguf_tensors(state, cfg):
    """(GGUF name, float32 array in PyTorch [out, in] shape) in file order."""
    t = lambda name: state[name].detach().float().cpu().numpy()  # noqa: E731
    out = [("token_embd.weight", t("tok_embd.weight"))]
    for i in range(cfg.n_layers):
        p, b = f"layers.{i}.", f"blk.{i}."
        out += [
            (b + "attn_norm.weight", t(p + "attn_norm.weight")),
            (b + "attn_q.weight", t(p + "wq.weight")),
            (b + "attn_k.weight", t(p + "wk.weight")),
            (b + "attn_v.weight", t(p + "wv.weight")),
            (b + "attn_output.weight", t(p + "wo.weight")),
            (b + "ffn_norm.weight", t(p + "ffn_norm.weight")),
            (b + "ffn_gate.weight", t(p + "w_gate.weight")),
            (b + "ffn_up.weight", t(p + "w_up.weight")),
            (b + "ffn_down.weight", t(p + "w_down.weight")),
        ]
    out.append(("output_norm.weight", t("output_norm.weight")))
    if not cfg.tied:
        out.append(("output.weight", t("output.weight")))
    return out


def export(model, cfg, tok, path, f16=True):
    kvs = [
        ("general.architecture", GGUF_STRING, "llama"),
        ("general.name", GGUF_STRING, "headroom-demo"),
        ("general.description", GGUF_STRING,
         "Headroom demo model: trained from scratch on synthetic pass-key documents "
         "(tools/demo_model)"),
        ("general.alignment", GGUF_U32, ALIGN),
        ("general.file_type", GGUF_U32, 1 if f16 else 0),
        ("llama.context_length", GGUF_U32, cfg.context_length),
        ("llama.embedding_length", GGUF_U32, cfg.dim),
        ("llama.block_count", GGUF_U32, cfg.n_layers),
        ("llama.feed_forward_length", GGUF_U32, cfg.ffn_dim),
        ("llama.rope.dimension_count", GGUF_U32, cfg.head_dim),
        ("llama.attention.head_count", GGUF_U32, cfg.n_heads),
        ("llama.attention.head_count_kv", GGUF_U32, cfg.n_kv_heads),
        ("llama.attention.layer_norm_rms_epsilon", GGUF_F32, cfg.rms_eps),
        ("llama.rope.freq_base", GGUF_F32, cfg.rope_theta),
        ("llama.vocab_size", GGUF_U32, cfg.vocab_size),
        ("tokenizer.ggml.model", GGUF_STRING, "llama"),
        ("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, tok.pieces)),
        ("tokenizer.ggml.scores", GGUF_ARRAY, (GGUF_F32, tok.scores)),
        ("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_I32, tok.types)),
        ("tokenizer.ggml.bos_token_id", GGUF_U32, 1),
        ("tokenizer.ggml.eos_token_id", GGUF_U32, 2),
        ("tokenizer.ggml.unknown_token_id", GGUF_U32, 0),
        ("tokenizer.ggml.add_bos_token", GGUF_BOOL, True),
        ("tokenizer.ggml.add_space_prefix", GGUF_BOOL, True),
    ]
    kvs += [(k, t, v) for k, (t, v) in LONGCTX_KEYS.items()]
    tensors = gguf_tensors(model.state_dict(), cfg)
    infos, blobs, offset = b"", [], 0
    for name, arr in tensors:
        if arr.ndim == 2 and f16:
            raw, gtype = arr.astype("<f2").tobytes(), GGML_F16
        else:
            raw, gtype = arr.astype("<f4").tobytes(), GGML_F32
        dims = list(reversed(arr.shape))  # ggml order: dims[0] = row length
        infos += _str(name) + struct.pack("<I", len(dims))
        infos += b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", gtype, offset)
        pad = -len(raw) % ALIGN
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(_kv(*kv) for kv in kvs) + infos
    head += b"\0" * (-len(head) % ALIGN)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        for blob in blobs:
            f.write(blob)
    import os
    os.replace(tmp, path)


def main():
    import os
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model import Config, Llama
    from tokenizer import Tokenizer
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ck = torch.load(sys.argv[1])
    cfg = Config(**ck["config"])
    model = Llama(cfg)
    model.load_state_dict(ck["model"])
    export(model, cfg, Tokenizer(), sys.argv[2], f16="--f32" not in sys.argv[3:])
    print("wrote", sys.argv[2])


if __name__ == "__main__":
    main()
