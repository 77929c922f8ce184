#!/usr/bin/env python3
"""Converts an official SeqPE text checkpoint (github.com/ghrua/seqpe,
text_seqpe/train.py) into Headroom's SeqPE model directory:

    OUT/config.json         (server/model/seqpe/seqpe_config.h)
    OUT/model.safetensors   (tensor names: server/model/seqpe/seqpe_loader.h)

Input, as the official code's accelerate `save_state` writes it
(docs/reference/algorithms.md §2.6):

  * the GPT2LMHeadModel state dict: model.safetensors, pytorch_model.bin or a
    torch .pt file (transformer.wte, transformer.h.N.{ln_1, attn.c_attn,
    attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}, transformer.ln_f,
    transformer.pe_qk, lm_head);
  * the SequentialPE state dict: model_1.safetensors or pytorch_model_1.bin
    (pos_of_seqpe_embed, token_of_seqpe_embed, cls_token_embed,
    transformers.N.{layernorm_1, attn.*, layernorm_2, mlp.*}, layernorm,
    out_proj);
  * config.json (Hugging Face GPT-2 config with the "pe_config" object the
    training script stores), else pe_config.json (yacs text) beside it;
    train_args.json (its block_size becomes trained_context) when present.

GPT-2 Conv1D weights are stored [in, out]; Headroom stores every matrix
[out, in] (nn.Linear), so Conv1D weights are transposed; nn.Linear ones
(pe_qk, out_proj, lm_head) are copied. Unsupported options stop the
conversion with a message: pe_type other than seq_pe, 2-D positions,
per-layer pe_qk ("multi"), attn_mul / attn_add / rotary / alibi, activations
other than gelu_new, layer-index attention scaling.

Usage:
  convert_checkpoint.py --checkpoint CKPT_DIR/best_model --out OUT_DIR
  convert_checkpoint.py --model M.pt --pe-model PE.safetensors --config config.json --out OUT_DIR
Options: --dtype f32|f16|bf16 (default f32), --pe-prefix P (the encoder's
tensors live in the main file under prefix P instead of a second file).

Needs numpy; torch only to read .pt / .bin files.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np


class ConversionError(Exception):
    pass


# ---------------------------------------------------------------------------
# Reading state dicts
# ---------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ConversionError("%s: truncated safetensors file" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[base + b:base + e]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif dt == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt == "F64":
            arr = np.frombuffer(buf, dtype="<f8").astype(np.float32)
        else:
            raise ConversionError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def read_torch(path):
    try:
        import torch
    except ImportError as e:
        raise ConversionError("%s: reading a torch file needs torch (%s)" % (path, e))
    obj = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ConversionError("%s: not a state dict" % path)
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            out[k] = v.detach().float().cpu().numpy()
    return out


def read_state_dict(path):
    sd = read_safetensors(path) if path.endswith(".safetensors") else read_torch(path)
    clean = {}
    for k, v in sd.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        clean[k] = v
    return clean


def first_existing(directory, names):
    for n in names:
        p = os.path.join(directory, n)
        if os.path.exists(p):
            return p
    return None


def parse_yacs(text):
    """The flat `KEY: value` text the official code writes as pe_config.json."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(" ") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        value = value.strip()
        if value in ("true", "false"):
            v = value == "true"
        elif value in ("null", "~", ""):
            v = None
        elif value == "{}":
            v = {}
        else:
            try:
                v = int(value)
            except ValueError:
                try:
                    v = float(value)
                except ValueError:
                    v = value.strip("'\"")
        out[key.strip()] = v
    return out


def load_configs(config_path, pe_config_path):
    with open(config_path) as f:
        hf = json.load(f)
    pc = hf.get("pe_config")
    if not pc:
        if not pe_config_path or not os.path.exists(pe_config_path):
            raise ConversionError("%s has no pe_config and no pe_config.json was found" % config_path)
        with open(pe_config_path) as f:
            text = f.read()
        try:
            pc = json.loads(text)
        except json.JSONDecodeError:
            pc = parse_yacs(text)
    return hf, pc


# ---------------------------------------------------------------------------
# The project's config
# ---------------------------------------------------------------------------

def require(cond, msg):
    if not cond:
        raise ConversionError(msg)


def project_config(hf, pc, trained_context):
    require(hf.get("model_type", "gpt2") == "gpt2", "model_type %r is not gpt2" % hf.get("model_type"))
    act = hf.get("activation_function", "gelu_new")
    require(act in ("gelu_new", "gelu_pytorch_tanh"), "activation_function %r is not supported "
            "(gelu_new)" % act)
    require(hf.get("scale_attn_weights", True), "scale_attn_weights false is not supported")
    require(not hf.get("scale_attn_by_inverse_layer_idx", False),
            "scale_attn_by_inverse_layer_idx is not supported")
    require(not hf.get("add_cross_attention", False), "cross-attention is not supported")
    require(pc.get("PE_TYPE") == "seq_pe", "PE_TYPE %r is not seq_pe" % pc.get("PE_TYPE"))
    require(pc.get("PE_DATA_DIM", 1) == 1, "PE_DATA_DIM %r: only 1-D positions" % pc.get("PE_DATA_DIM"))
    method = pc.get("PE_APPLY_METHOD")
    require(method in ("attn_scalar", "input_add"),
            "PE_APPLY_METHOD %r is not supported (attn_scalar, input_add)" % method)
    per_layer = pc.get("USE_PE_QK_PER_LAYER")
    if isinstance(per_layer, bool):  # the official code's legacy spelling
        per_layer = "multi" if per_layer else "single"
    if per_layer is None:
        per_layer = "none"
    require(per_layer in ("single", "none"),
            "USE_PE_QK_PER_LAYER %r is not supported (single, none)" % per_layer)
    require(pc.get("SEQPE_ACTIVATION_FUNCTION", "gelu_new") in ("gelu_new", "gelu_pytorch_tanh"),
            "SEQPE_ACTIVATION_FUNCTION %r is not supported" % pc.get("SEQPE_ACTIVATION_FUNCTION"))
    require(pc.get("SEQPE_SCALE_ATTN_WEIGHTS", True), "SEQPE_SCALE_ATTN_WEIGHTS false is not supported")
    C = hf["n_embd"]
    E = pc["PE_EMBED_DIM"]
    P = pc.get("PE_OUT_PROJ_DIM", -1)
    P = E if P is None or P <= 0 else P
    max_digits = pc.get("SEQPE_MAX_DIGITS")
    if not max_digits or max_digits < 0:
        max_digits = len(str(pc["PE_MAX_POSITION"] - 1))
    multi = bool(pc.get("USE_PE_MULTI_HEAD", False)) if method == "attn_scalar" else False
    return {
        "architecture": "gpt2_seqpe",
        "vocab_size": hf["vocab_size"],
        "dim": C,
        "n_layers": hf["n_layer"],
        "n_heads": hf["n_head"],
        "ffn_dim": hf.get("n_inner") or 4 * C,
        "layer_norm_eps": hf.get("layer_norm_epsilon", 1e-5),
        "activation": "gelu_tanh",
        "trained_context": int(trained_context or 0),
        "tied_embeddings": True,  # set from the weights below
        "seqpe": {
            "apply": method,
            "qk_proj": per_layer if method == "attn_scalar" else "none",
            "multi_head": multi,
            "scalar_scale": pc.get("SEQPE_SCALAR_SCALE", 1.0),
            "encoder": {
                "base": 10,
                "max_digits": max_digits,
                "embed_dim": E,
                "n_heads": pc["NUM_ATTENTION_HEADS"],
                "n_layers": pc.get("SEQPE_LAYER_NUM", 2),
                "ffn_dim": 4 * E,
                "attn_direction": pc.get("SEQPE_ATTN_DIRECTION", "causal"),
                "mask_padding": bool(pc.get("SEQPE_MASK_PADDING", False)),
                "final_layernorm": bool(pc.get("SEQPE_LAST_LAYERNORM", False)),
                "layer_norm_eps": 1e-5,
                "out_dim": P,
                "temperature": pc.get("SEQPE_TEMPERATURE", 1.0),
            },
        },
    }


# ---------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------

class Mapper:
    def __init__(self, src, what):
        self.src, self.what, self.out = dict(src), what, {}

    def take(self, name, shape):
        if name not in self.src:
            raise ConversionError("%s: tensor %s not found" % (self.what, name))
        v = self.src.pop(name)
        if tuple(v.shape) != tuple(shape):
            raise ConversionError("%s: tensor %s has shape %s, expected %s"
                                  % (self.what, name, list(v.shape), list(shape)))
        return v

    def linear(self, dst, src, n_out, n_in):  # nn.Linear: copied
        self.out[dst + ".weight"] = self.take(src + ".weight", (n_out, n_in))
        self.out[dst + ".bias"] = self.take(src + ".bias", (n_out,))

    def conv1d(self, dst, src, n_out, n_in):  # Conv1D [in, out] -> [out, in]
        self.out[dst + ".weight"] = self.take(src + ".weight", (n_in, n_out)).T.copy()
        self.out[dst + ".bias"] = self.take(src + ".bias", (n_out,))

    def norm(self, dst, src, dim):
        self.out[dst + ".weight"] = self.take(src + ".weight", (dim,))
        self.out[dst + ".bias"] = self.take(src + ".bias", (dim,))

    def block(self, dst, src, ln1, ln2, dim, ffn):
        self.norm(dst + ".attn_norm", src + ln1, dim)
        self.conv1d(dst + ".attn_qkv", src + "attn.c_attn", 3 * dim, dim)
        self.conv1d(dst + ".attn_out", src + "attn.c_proj", dim, dim)
        self.norm(dst + ".ffn_norm", src + ln2, dim)
        self.conv1d(dst + ".ffn_up", src + "mlp.c_fc", ffn, dim)
        self.conv1d(dst + ".ffn_down", src + "mlp.c_proj", dim, ffn)

    def finish(self, ignorable=()):
        left = [k for k in self.src if not any(k.endswith(s) for s in ignorable)]
        if left:
            raise ConversionError("%s: tensors not used by the model: %s" % (self.what, sorted(left)))
        return self.out


def convert_tensors(cfg, sd, sd_pe):
    C, V, L, F = cfg["dim"], cfg["vocab_size"], cfg["n_layers"], cfg["ffn_dim"]
    enc = cfg["seqpe"]["encoder"]
    E, P, D = enc["embed_dim"], enc["out_dim"], enc["max_digits"]
    m = Mapper(sd, "main model")
    m.out["tok_embd.weight"] = m.take("transformer.wte.weight", (V, C))
    for i in range(L):
        m.block("blk.%d" % i, "transformer.h.%d." % i, "ln_1", "ln_2", C, F)
    m.norm("output_norm", "transformer.ln_f", C)
    if "lm_head.weight" in m.src:
        head = m.take("lm_head.weight", (V, C))
        if not np.array_equal(head, m.out["tok_embd.weight"]):
            m.out["output.weight"] = head
            cfg["tied_embeddings"] = False
    if cfg["seqpe"]["apply"] == "attn_scalar" and cfg["seqpe"]["qk_proj"] == "single":
        m.linear("seqpe.pe_qk", "transformer.pe_qk", 2 * P, P)
    if "transformer.wpe.weight" in m.src:
        raise ConversionError("main model: has transformer.wpe (a learned absolute PE), not SeqPE")
    out = m.finish(ignorable=(".attn.bias", ".attn.masked_bias"))

    p = Mapper(sd_pe, "position encoder")
    p.out["seqpe.digit_embd.weight"] = p.take("token_of_seqpe_embed.weight", (10, E))
    p.out["seqpe.slot_embd.weight"] = p.take("pos_of_seqpe_embed.weight", (D, E))
    p.out["seqpe.cls"] = p.take("cls_token_embed", (1, 1, E)).reshape(E)
    for i in range(enc["n_layers"]):
        p.block("seqpe.blk.%d" % i, "transformers.%d." % i, "layernorm_1", "layernorm_2", E, 4 * E)
    if enc["final_layernorm"]:
        p.norm("seqpe.output_norm", "layernorm", E)
    p.linear("seqpe.out_proj", "out_proj", P, E)
    out.update(p.finish())
    return out


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def f32_to_bf16_bits(a):
    u = np.ascontiguousarray(a, dtype="<f4").view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
    return rounded.astype("<u2")


def write_safetensors(path, tensors, dtype, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        arr = tensors[name]
        # Norm weights/biases and vectors stay F32 (as GGUF converters do).
        if dtype == "f32" or arr.ndim < 2:
            data, dt = np.ascontiguousarray(arr, dtype="<f4").tobytes(), "F32"
        elif dtype == "f16":
            data, dt = np.ascontiguousarray(arr, dtype="<f2").tobytes(), "F16"
        else:
            data, dt = f32_to_bf16_bits(arr).tobytes(), "BF16"
        header[name] = {"dtype": dt, "shape": list(arr.shape),
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="the accelerate save_state directory (e.g. CKPT/best_model)")
    ap.add_argument("--model", help="GPT2LMHeadModel state dict (.safetensors, .bin, .pt)")
    ap.add_argument("--pe-model", help="SequentialPE state dict (.safetensors, .bin, .pt)")
    ap.add_argument("--pe-prefix", help="read the encoder from the main file under this prefix")
    ap.add_argument("--config", help="config.json (default: in or above --checkpoint)")
    ap.add_argument("--pe-config", help="pe_config.json (only when config.json has no pe_config)")
    ap.add_argument("--train-args", help="train_args.json (block_size -> trained_context)")
    ap.add_argument("--trained-context", type=int, help="overrides train_args.json")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        search = []
        if args.checkpoint:
            search = [args.checkpoint, os.path.dirname(os.path.abspath(args.checkpoint))]
            args.model = args.model or first_existing(
                args.checkpoint, ["model.safetensors", "pytorch_model.bin", "model.pt"])
            if not args.pe_prefix:
                args.pe_model = args.pe_model or first_existing(
                    args.checkpoint, ["model_1.safetensors", "pytorch_model_1.bin", "model_1.pt"])
        def find(name):
            for d in search:
                p = os.path.join(d, name)
                if os.path.exists(p):
                    return p
            return None
        args.config = args.config or find("config.json")
        args.pe_config = args.pe_config or find("pe_config.json")
        args.train_args = args.train_args or find("train_args.json")
        require(args.model, "no main model state dict (--model or --checkpoint)")
        require(args.pe_model or args.pe_prefix, "no position encoder state dict (--pe-model)")
        require(args.config, "no config.json (--config)")

        hf, pc = load_configs(args.config, args.pe_config)
        trained = args.trained_context
        if trained is None and args.train_args and os.path.exists(args.train_args):
            with open(args.train_args) as f:
                trained = json.load(f).get("block_size")
        cfg = project_config(hf, pc, trained)
        sd = read_state_dict(args.model)
        if args.pe_prefix:
            sd_pe = {k[len(args.pe_prefix):]: v for k, v in sd.items() if k.startswith(args.pe_prefix)}
            sd = {k: v for k, v in sd.items() if not k.startswith(args.pe_prefix)}
        else:
            sd_pe = read_state_dict(args.pe_model)
        tensors = convert_tensors(cfg, sd, sd_pe)
        os.makedirs(args.out, exist_ok=True)
        write_safetensors(os.path.join(args.out, "model.safetensors"), tensors, args.dtype,
                          {"converted_from": os.path.abspath(args.model), "format": "headroom-seqpe-1"})
        with open(os.path.join(args.out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
    except ConversionError as e:
        print("convert_checkpoint: error: %s" % e, file=sys.stderr)
        return 1
    print("wrote %s (%d tensors, %s)" % (args.out, len(tensors), args.dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
