#!/usr/bin/python3
"""Numerical self-checks of the SeqPE demo model (seqpe_model.py) and of its
export to Headroom's SeqPE model directory. Cheap (seconds, a small random
model); needs torch and numpy.

    nice -n 19 /usr/bin/python3 tools/demo_model/seqpe_selfcheck.py
        1. the attention-bias path (SeqPeLM.attn_bias) against a direct
           per-position, per-head, per-pair computation (loops, float64);
        2. export (train_seqpe.export: official layout -> convert_checkpoint.py,
           F32) and the project's independent numpy reference
           (tests/reference/seqpe_ref.py) on the converted directory: PE(p) at
           small and large positions, the bias at shifted positions, and the
           logits of a 24-token sequence; plus that the bias changes the
           logits (so the comparison is not vacuous);
        3. config.json and the tensor list / shapes against what
           server/model/seqpe/seqpe_config.h and seqpe_loader.cc require;
        4. tokenizer.model against tokenizer.py (SentencePiece library, if
           installed).

    seqpe_selfcheck.py --model_dir OUT [--checkpoint RUN/checkpoint.pt]
        3 and 4 on a trained output directory; with the checkpoint, also its
        PyTorch logits against the reference on OUT (F16 storage: expect
        errors of about 1e-3).
"""

import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)


# ---------------------------------------------------------------------------
# 1. The attention-bias path against a direct computation
# ---------------------------------------------------------------------------

def _ln(x, w, b, eps):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / math.sqrt(var + eps) * w + b


def direct_pe(model, p):
    """PE(p) in float64 numpy, token by token (no batching, no masks)."""
    cfg = model.cfg
    sd = {k: v.detach().double().cpu().numpy() for k, v in model.seqpe.state_dict().items()}
    D, E, He = cfg.max_digits, cfg.pe_embed_dim, cfg.pe_heads
    hd = E // He
    digits = [int(c) for c in str(p).zfill(D)]
    assert len(digits) == D
    x = [sd["token_of_seqpe_embed.weight"][d] + sd["pos_of_seqpe_embed.weight"][t]
         for t, d in enumerate(digits)]
    x.append(sd["cls_token_embed"].reshape(E))
    T = len(x)
    eps = cfg.layer_norm_eps
    for layer in range(cfg.pe_layers):
        pre = "transformers.%d." % layer
        a = [_ln(v, sd[pre + "layernorm_1.weight"], sd[pre + "layernorm_1.bias"], eps) for v in x]
        qkv = [v @ sd[pre + "attn.c_attn.weight"] + sd[pre + "attn.c_attn.bias"] for v in a]
        out = []
        for t in range(T):
            o = np.zeros(E)
            for h in range(He):
                sl = slice(h * hd, (h + 1) * hd)
                q = qkv[t][:E][sl]
                keys = range(t + 1) if cfg.pe_attn_direction == "causal" else range(T)
                s = np.array([q @ qkv[j][E:2 * E][sl] / math.sqrt(hd) for j in keys])
                w = np.exp(s - s.max())
                w /= w.sum()
                o[sl] = sum(wj * qkv[j][2 * E:][sl] for wj, j in zip(w, keys))
            out.append(o @ sd[pre + "attn.c_proj.weight"] + sd[pre + "attn.c_proj.bias"])
        x = [v + o for v, o in zip(x, out)]
        m = [_ln(v, sd[pre + "layernorm_2.weight"], sd[pre + "layernorm_2.bias"], eps) for v in x]
        hid = [v @ sd[pre + "mlp.c_fc.weight"] + sd[pre + "mlp.c_fc.bias"] for v in m]
        hid = [0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))) for v in hid]
        x = [v + (g @ sd[pre + "mlp.c_proj.weight"] + sd[pre + "mlp.c_proj.bias"]) for v, g in zip(x, hid)]
    c = x[-1]
    if cfg.pe_final_layernorm:
        c = _ln(c, sd["layernorm.weight"], sd["layernorm.bias"], eps)
    return (sd["out_proj.weight"] @ c + sd["out_proj.bias"]) / cfg.pe_temperature


def direct_bias(model, positions):
    """[Hb, N, N]: s·pq_h(i)·pk_h(j) from the direct PE, pe_qk as W·x + b."""
    cfg = model.cfg
    W = model.gpt2.transformer.pe_qk.weight.detach().double().cpu().numpy()
    b = model.gpt2.transformer.pe_qk.bias.detach().double().cpu().numpy()
    P = cfg.pe_out_dim
    hb = cfg.n_heads if cfg.multi_head else 1
    dh = P // hb
    rows = [W @ direct_pe(model, p) + b for p in positions]
    N = len(positions)
    out = np.zeros((hb, N, N))
    for h in range(hb):
        for i in range(N):
            for j in range(N):
                pq = rows[i][h * dh:(h + 1) * dh]
                pk = rows[j][P + h * dh:P + (h + 1) * dh]
                out[h, i, j] = cfg.scalar_scale * float(pq @ pk)
    return out


def check_bias_path(model, positions):
    """Max |model - direct| / max|direct| of the bias at `positions`."""
    with torch.no_grad():
        got = model.attn_bias(torch.tensor(positions, dtype=torch.long)).double().cpu().numpy()
    want = direct_bias(model, positions)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


# ---------------------------------------------------------------------------
# 3. The C++ side's requirements (seqpe_config.h / seqpe_loader.cc)
# ---------------------------------------------------------------------------

def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header


def check_model_dir(model_dir):
    """Raises AssertionError naming the first mismatch with what
    ParseSeqPeConfig / LoadSeqPeModel accept. Returns a summary string."""
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    def need(obj, key, typ, default=None):
        v = obj.get(key, default)
        assert v is not None, "config.json: missing '%s'" % key
        if typ is int:
            assert isinstance(v, int) and not isinstance(v, bool), "'%s' not an integer" % key
        elif typ is float:
            assert isinstance(v, (int, float)) and not isinstance(v, bool), "'%s' not a number" % key
        else:
            assert isinstance(v, typ), "'%s' is not %s" % (key, typ.__name__)
        return v
    assert need(c, "architecture", str) == "gpt2_seqpe"
    V, C, L, H, Fd = (need(c, k, int) for k in ("vocab_size", "dim", "n_layers", "n_heads", "ffn_dim"))
    need(c, "layer_norm_eps", float, 1e-5)
    assert need(c, "activation", str, "gelu_tanh") == "gelu_tanh"
    need(c, "trained_context", int, 0)
    tied = need(c, "tied_embeddings", bool, True)
    pe = need(c, "seqpe", dict)
    apply = need(pe, "apply", str)
    assert apply in ("attn_scalar", "input_add"), apply
    scalar = apply == "attn_scalar"
    qk = need(pe, "qk_proj", str, None if scalar else "none")
    assert qk in ("single", "none")
    multi = need(pe, "multi_head", bool, None if scalar else False)
    need(pe, "scalar_scale", float, 1.0)
    e = need(pe, "encoder", dict)
    base = need(e, "base", int, 10)
    D, E, He, Le, Fe, P = (need(e, k, int) for k in
                           ("max_digits", "embed_dim", "n_heads", "n_layers", "ffn_dim", "out_dim"))
    assert need(e, "attn_direction", str, "causal") in ("causal", "bi")
    need(e, "mask_padding", bool, False)
    final_ln = need(e, "final_layernorm", bool, True)
    need(e, "layer_norm_eps", float, 1e-5)
    assert need(e, "temperature", float, 1.0) > 0
    # Validate()
    assert V > 0 and C > 0 and L > 0 and H > 0 and C % H == 0 and Fd > 0
    assert 2 <= base <= 36 and 1 <= D <= 18 and E > 0 and He > 0 and E % He == 0 and Fe > 0 and P > 0
    if scalar:
        assert not (qk == "none" and P != C), "qk_proj none needs out_dim == dim"
        assert not (multi and P % H), "multi_head needs out_dim % n_heads == 0"
    else:
        assert P == C and not multi
    # Tensors (seqpe_loader.cc), every one used, shapes exact.
    want = {"tok_embd.weight": [V, C], "output_norm.weight": [C], "output_norm.bias": [C]}
    def block(pre, d, f):
        want.update({pre + ".attn_norm.weight": [d], pre + ".attn_norm.bias": [d],
                     pre + ".attn_qkv.weight": [3 * d, d], pre + ".attn_qkv.bias": [3 * d],
                     pre + ".attn_out.weight": [d, d], pre + ".attn_out.bias": [d],
                     pre + ".ffn_norm.weight": [d], pre + ".ffn_norm.bias": [d],
                     pre + ".ffn_up.weight": [f, d], pre + ".ffn_up.bias": [f],
                     pre + ".ffn_down.weight": [d, f], pre + ".ffn_down.bias": [d]})
    for i in range(L):
        block("blk.%d" % i, C, Fd)
    if not tied:
        want["output.weight"] = [V, C]
    if scalar and qk == "single":
        want["seqpe.pe_qk.weight"] = [2 * P, P]
        want["seqpe.pe_qk.bias"] = [2 * P]
    want.update({"seqpe.digit_embd.weight": [base, E], "seqpe.slot_embd.weight": [D, E],
                 "seqpe.cls": [E], "seqpe.out_proj.weight": [P, E], "seqpe.out_proj.bias": [P]})
    for i in range(Le):
        block("seqpe.blk.%d" % i, E, Fe)
    if final_ln:
        want["seqpe.output_norm.weight"] = [E]
        want["seqpe.output_norm.bias"] = [E]
    got = read_safetensors_header(os.path.join(model_dir, "model.safetensors"))
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing, "missing tensors: %s" % missing
    assert not extra, "tensors the loader would reject as unused: %s" % extra
    for k, shape in want.items():
        assert got[k]["shape"] == shape, (k, got[k]["shape"], shape)
        assert got[k]["dtype"] in ("F32", "F16", "BF16"), (k, got[k]["dtype"])
    dtypes = sorted({v["dtype"] for v in got.values()})
    return ("config and %d tensors as the C++ loader requires (%s); positions 0..%d"
            % (len(got), "/".join(dtypes), base ** D - 1))


# ---------------------------------------------------------------------------
# 2. Against the project's reference
# ---------------------------------------------------------------------------

def load_reference():
    sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
    import seqpe_ref
    return seqpe_ref


def compare_with_reference(model, model_dir, tokens, positions, shifted):
    """Max errors (relative to max |ref|) of PE, bias at shifted positions and
    logits, our PyTorch model vs seqpe_ref.py on the converted directory."""
    ref = load_reference()
    sd, sd_pe, cfg, pc = ref.project_to_official(model_dir)
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    sd_pe = {k: v.astype(np.float64) for k, v in sd_pe.items()}
    rel = lambda a, b: float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))  # noqa: E731
    out = {}
    with torch.no_grad():
        pe = model.pe(torch.tensor(positions)).double().numpy()
        out["pe"] = rel(pe, ref.encoder_forward(sd_pe, pc, positions))
        ours = model.attn_bias(torch.tensor(shifted)).double().numpy() / math.sqrt(model.cfg.head_dim)
        out["bias_shifted"] = rel(ours, ref.attn_bias(sd, cfg, pc, ref.encoder_forward(sd_pe, pc, shifted)))
        logits = model(torch.tensor([tokens]))[0].double().numpy()
        want = ref.gpt2_run(sd, sd_pe, cfg, pc, tokens)
        out["logits"] = rel(logits, want)
        nobias = ref.gpt2_run(sd, sd_pe, cfg, pc, tokens, use_bias=False)
        out["effect_of_bias"] = float(np.abs(nobias - want).max())
    return out


def random_model(seed=3, std=0.1):
    from seqpe_model import SeqPeLM, SeqPeLMConfig
    torch.manual_seed(seed)
    cfg = SeqPeLMConfig(vocab_size=1445, dim=48, n_layers=2, n_heads=6, ffn_dim=192,
                        pe_embed_dim=32, pe_heads=4, pe_layers=2, max_digits=6, pe_out_dim=48)
    model = SeqPeLM(cfg)
    with torch.no_grad():  # large random weights: every term of the forward matters
        for name, p in model.named_parameters():
            if name.endswith("lm_head.weight"):
                continue
            p.normal_(0.0, std)
            if ("ln" in name or "layernorm" in name) and name.endswith("weight"):
                p.add_(1.0)
        model.gpt2.transformer.pe_qk.weight.mul_(4.0)
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir")
    ap.add_argument("--checkpoint")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ok = True

    def report(name, err, tol):
        nonlocal ok
        good = err <= tol
        ok &= good
        print("%-48s %.2e (tolerance %.0e) %s" % (name, err, tol, "ok" if good else "FAILED"))

    if args.model_dir:
        print(check_model_dir(args.model_dir))
        tok_path = os.path.join(args.model_dir, "tokenizer.model")
        if os.path.exists(tok_path):
            import spm_export
            r = spm_export.check(tok_path)
            print("tokenizer.model: " + ("sentencepiece not installed" if r is None else
                                         "== tokenizer.py on %d texts, %d tokens" % r))
        if args.checkpoint:
            from seqpe_model import SeqPeLM, SeqPeLMConfig
            ck = torch.load(args.checkpoint, map_location="cpu")
            model = SeqPeLM(SeqPeLMConfig(**ck["config"]))
            model.load_state_dict(ck["model"])
            model.eval()
            rng = np.random.default_rng(1)
            tokens = [1] + rng.integers(3, model.cfg.vocab_size, 31).tolist()
            errs = compare_with_reference(model, args.model_dir, tokens, [0, 5, 255, 131071, 999999],
                                          [100000 + i for i in (0, 1, 9, 200)])
            for k in ("pe", "bias_shifted", "logits"):
                report("checkpoint vs %s: %s" % (args.model_dir, k), errs[k], 5e-2)
            print("effect of the bias on the logits: %.3f" % errs["effect_of_bias"])
        sys.exit(0 if ok else 1)

    model = random_model()
    report("1. bias path vs direct loops (6 positions)",
           check_bias_path(model, [0, 9, 10, 4242, 131071, 999999]), 1e-5)

    import train_seqpe
    with tempfile.TemporaryDirectory(prefix="seqpe-selfcheck-") as tmp:
        targs = train_seqpe.parse_args(["--run_dir", os.path.join(tmp, "run"), "--out",
                                        os.path.join(tmp, "out"), "--dtype", "f32", "--dim", "48"])
        os.makedirs(targs.run_dir)
        train_seqpe.export(model, targs, lambda msg: None)
        out = os.path.join(tmp, "out")
        rng = np.random.default_rng(0)
        tokens = [1] + rng.integers(3, model.cfg.vocab_size, 23).tolist()
        errs = compare_with_reference(model, out, tokens, [0, 1, 42, 99999, 131071, 262143, 999999],
                                      [123450 + i for i in (0, 1, 2, 7, 30)])
        report("2. PE(p) vs seqpe_ref.py (7 positions)", errs["pe"], 1e-5)
        report("2. bias at positions 123450.. vs seqpe_ref.py", errs["bias_shifted"], 1e-5)
        report("2. logits (24 tokens) vs seqpe_ref.py", errs["logits"], 1e-4)
        eff = errs["effect_of_bias"]
        ok &= eff > 0.05
        print("%-48s %.2e (must exceed 5e-02) %s" % ("2. effect of the bias on the logits", eff,
                                                      "ok" if eff > 0.05 else "FAILED"))
        print("3. " + check_model_dir(out))
        import spm_export
        r = spm_export.check(os.path.join(out, "tokenizer.model"))
        print("4. tokenizer.model: " + ("sentencepiece not installed: not checked" if r is None else
                                         "== tokenizer.py on %d texts, %d tokens" % r))
    print("all ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
