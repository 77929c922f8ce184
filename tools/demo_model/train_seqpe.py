#!/usr/bin/python3
"""Trains the SeqPE demo model from scratch on the CPU and writes Headroom's
SeqPE model directory (config.json + model.safetensors + tokenizer.model).

    nice -n 10 /usr/bin/python3 tools/demo_model/train_seqpe.py

A GPT-2-style decoder (seqpe_model.py) with SeqPE positions (attn_scalar,
one shared pe_qk; docs/reference/algorithms.md §2), trained on the same
pass-key documents, tokenizer, context (256) and optimizer as the RoPE demo
(train.py, whose batch function is reused unchanged). The loss is

    task + 0.1 · contrastive + 0.1 · transfer

where `task` is train.py's loss (0.25·LM + 4·answer + 1·retrieval attention)
and the two SeqPE losses are the official ones (§2.5): see
tools/demo_model/README.md, "SeqPE demo model". In 10% of the steps the whole
LM block sits at positions [s, s+T) with s from 320 pre-drawn offsets in
[0, pe_max_position - seq_len]. One deviation from the official code, an
initialisation only (--pe_qk_init zero_q, the default): the pq half of pe_qk
starts at zero, so the position bias is 0 at step 0.

Seeded and deterministic (fixed thread count; every step's batch and every
PE sample is a pure function of --seed and the step). Resumable: rerunning
the same command continues from RUN_DIR/checkpoint.pt. At the end (or when
--time_budget is spent) it writes the official-layout checkpoint
(RUN_DIR/official/: config.json with pe_config, pe_config.json,
train_args.json, best_model/pytorch_model.bin (main) and
best_model/pytorch_model_1.bin (SequentialPE)), runs
tools/seqpe/convert_checkpoint.py on it into --out, and writes
--out/tokenizer.model (spm_export.py).
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
import warnings

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "seqpe"))
from data import DocumentGenerator  # noqa: E402
from seqpe_model import SeqPeLM, SeqPeLMConfig  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402
import train as rope_train  # noqa: E402  (start_run, optimizer_and_resume, make_batch, ...)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_dir", default=os.path.join(HERE, "run_seqpe"))
    p.add_argument("--out", default=os.path.join(REPO, "models", "seqpe_demo"),
                   help="the Headroom SeqPE model directory to write")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f16",
                   help="matrix storage in model.safetensors (vectors stay F32)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--time_budget", type=float, default=0,
                   help="seconds of training after which the run stops early and exports "
                        "(0: none; the LR schedule still assumes --steps)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq_len", type=int, default=256, help="trained context")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=50)
    # The task loss: as train.py.
    p.add_argument("--answer_weight", type=float, default=4.0)
    p.add_argument("--lm_weight", type=float, default=0.25)
    p.add_argument("--attn_weight", type=float, default=1.0)
    p.add_argument("--retrieval_heads", default="0,3")
    p.add_argument("--retrieval_layer", type=int, default=-1)
    p.add_argument("--curriculum", type=int, default=150)
    p.add_argument("--short_frac", type=float, default=0.5)
    # Main model.
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--n_layers", type=int, default=4)
    p.add_argument("--n_heads", type=int, default=6)
    p.add_argument("--tied", action="store_true",
                   help="tie lm_head to wte (the RoPE demo found untied necessary)")
    # Position encoder.
    p.add_argument("--pe_dim", type=int, default=128, help="encoder width E")
    p.add_argument("--pe_heads", type=int, default=4)
    p.add_argument("--pe_layers", type=int, default=2)
    p.add_argument("--max_digits", type=int, default=6)
    p.add_argument("--pe_max_position", type=int, default=262144,
                   help="positions the contrastive / transfer losses and the shifts sample from")
    # SeqPE losses (official recipe values unless noted).
    p.add_argument("--contrastive_weight", type=float, default=0.1)
    p.add_argument("--transfer_weight", type=float, default=0.1)
    p.add_argument("--contrastive_batch", type=int, default=16, help="pivots per step (official 32)")
    p.add_argument("--contrastive_num", type=int, default=32)
    p.add_argument("--dist_range", type=int, default=256, help="SEQPE_DIST_SAMPLE_RANGE")
    p.add_argument("--dist_prob", type=float, default=0.6,
                   help="probability of window ('distributional') candidates, else hard negatives")
    p.add_argument("--hard_neg_ratio", type=float, default=0.25)
    p.add_argument("--transfer_batch", type=int, default=16, help="offsets per step (official 32)")
    p.add_argument("--transfer_num", type=int, default=32)
    p.add_argument("--transfer_reduction", choices=["mean", "row"], default="mean",
                   help="mean: the official F.kl_div default (tiny values); row: M times larger")
    p.add_argument("--shift_rate", type=float, default=0.1)
    p.add_argument("--shift_pool", type=int, default=320,
                   help="pre-drawn shift offsets (PE_RANDOM_SHIFT_DOWNSAMPLE); 0: a fresh one each time")
    p.add_argument("--pe_qk_init", choices=["normal", "zero_q"], default="zero_q",
                   help="zero_q: the pq half of pe_qk starts at zero (bias 0 at init; learned "
                        "the task in 1000 steps in a GPU pilot, see README); normal: N(0, 0.02) "
                        "as GPT-2 / the official code")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: 3x faster than 2 on a 2-core machine under load)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--eval_offsets", default="0,100000,250000",
                   help="block offsets of the in-window accuracy check")
    p.add_argument("--ckpt_every", type=int, default=25)
    p.add_argument("--log_every", type=int, default=5)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
# Position sampling (official pe_sampler.py semantics, own implementation)
# ---------------------------------------------------------------------------

class PeSampler:
    def __init__(self, args):
        self.n_max = args.pe_max_position
        self.max_digits = args.max_digits
        self.seq_len = args.seq_len
        self.args = args
        if self.n_max > 10 ** args.max_digits:
            raise ValueError("pe_max_position exceeds the digit budget")
        pool_rng = random.Random(args.seed * 7919 + 17)
        hi = self.n_max - args.seq_len
        self.shift_pool = [pool_rng.randint(0, hi) for _ in range(args.shift_pool)]

    def shift(self, rng):
        """The LM block's first position: 0, or (shift_rate) a pool offset."""
        if rng.random() >= self.args.shift_rate:
            return 0
        if self.shift_pool:
            return rng.choice(self.shift_pool)
        return rng.randint(0, self.n_max - self.seq_len)

    # -- contrastive --------------------------------------------------------
    def _hard_negative(self, rng, pivot):
        """1 to 3 digit edits (insert, swap, replace, delete) of `pivot`."""
        s0 = str(pivot)
        s = s0
        n_ops, done, tries = rng.randint(1, 3), 0, 0
        while done < n_ops and tries < 100:
            tries += 1
            op = rng.randint(1, 4)
            n = len(s)
            r = None
            if op == 1 and n < self.max_digits:       # insert a digit
                i = rng.randint(0, n)
                d = rng.randint(1, 9) if i == 0 else rng.randint(0, 9)
                r = s[:i] + str(d) + s[i:]
            elif op == 2 and n >= 2:                  # swap two digits
                i, j = sorted(rng.sample(range(n), 2))
                t = list(s)
                t[i], t[j] = t[j], t[i]
                r = "".join(t)
                if r[0] == "0":
                    r = None
            elif op == 3:                             # replace a digit
                i = rng.randrange(n)
                d = rng.randint(1, 9) if (i == 0 and n > 1) else rng.randint(0, 9)
                r = s[:i] + str(d) + s[i + 1:]
            elif op == 4 and n >= 2:                  # delete a digit
                i = rng.randrange(n)
                r = s[:i] + s[i + 1:]
                if r[0] == "0":
                    r = None
            if r is None or r == s or r == s0 or int(r) >= self.n_max:
                continue
            s = r
            done += 1
        return int(s)

    def contrastive(self, rng, n_pivots):
        """pivots [n], candidates [n, K], labels [n] (index of the candidate
        closest to the pivot)."""
        K = self.args.contrastive_num
        n_hard = int(K * self.args.hard_neg_ratio)
        pivots, cands, labels = [], [], []
        for _ in range(n_pivots):
            p = rng.randrange(self.n_max)
            simple = rng.sample(range(self.n_max), K + 1)
            if rng.random() < self.args.dist_prob:
                R = max(self.args.dist_range, 5 * K)
                start = int((self.n_max - R) * rng.random())
                window = range(start, min(start + R, self.n_max))
                special = rng.sample(window, min(K, len(window)))
            else:
                # Hard negatives farther from p than the closest uniform one:
                # the label stays a uniform candidate, the edits distract.
                min_d = min(abs(x - p) for x in simple[:-n_hard])
                special = [h for h in (self._hard_negative(rng, p) for _ in range(n_hard))
                           if abs(h - p) > min_d]
            merged, seen = [], {p}
            for x in special + simple:
                if x not in seen:
                    merged.append(x)
                    seen.add(x)
            merged = merged[:K]
            dist = [abs(x - p) for x in merged]
            pivots.append(p)
            cands.append(merged)
            labels.append(dist.index(min(dist)))
        return pivots, cands, labels

    # -- transfer -------------------------------------------------------------
    def transfer(self, rng, n_offsets):
        """In-window indices [n, M] (teacher positions) and the shifted
        student positions [n, M] = offset + index."""
        M, T = self.args.transfer_num, self.seq_len
        idx, students = [], []
        for _ in range(n_offsets):
            off = rng.randrange(T // 4, self.n_max - T)
            ii = rng.sample(range(T), M)
            idx.append(ii)
            students.append([off + i for i in ii])
        return idx, students


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def contrastive_loss(pe_pivot, pe_cand, labels):
    """SeqPeContrastiveCriterion (defaults: one head, no smoothing):
    logits = PE(p)·PE(c), cross-entropy on the closest candidate."""
    logits = torch.einsum("np,nkp->nk", pe_pivot, pe_cand)
    loss = F.cross_entropy(logits, labels)
    acc = (logits.argmax(-1) == labels).float().mean()
    return loss, acc


def transfer_loss(pe_teacher, pe_student, n_heads, reduction="mean"):
    """SeqPeTransferCriterion (kl_div, beta 1, multi-head): per head, the
    similarity distributions softmax(P·Pᵀ) over the M sampled positions of
    the teacher (in-window, detached) and of the student (shifted);
    symmetric KL. reduction "mean" (the official code: F.kl_div's default,
    an average over every element, i.e. the per-row KL divided by M) or
    "row" (the per-row KL averaged over rows, heads and offsets: M times
    larger)."""
    n, M, P = pe_student.shape
    t = pe_teacher.detach().view(n, M, n_heads, -1).transpose(1, 2)
    s = pe_student.view(n, M, n_heads, -1).transpose(1, 2)
    t_dist = F.log_softmax(t @ t.transpose(-2, -1), dim=-1)
    s_dist = F.log_softmax(s @ s.transpose(-2, -1), dim=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'mean' divides by the support size too": as official
        loss = (F.kl_div(s_dist, t_dist, log_target=True)
                + F.kl_div(t_dist, s_dist, log_target=True))
    return loss if reduction == "mean" else loss * M


# ---------------------------------------------------------------------------
# Evaluation, export
# ---------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, gen, args, offset=0, n=48):
    """train.py's check (teacher-forced greedy answer, all 5 digits, fixed
    in-window documents) with the block placed at positions offset + 0..T-1."""
    model.eval()
    rng = random.Random(999)
    ok = 0
    pos_all = torch.arange(args.seq_len + 1, device=args.device) + offset
    pe_all = model.pe(pos_all)
    for _ in range(n):
        length = rng.randint(64, args.seq_len)
        ids, a = rope_train._plain(gen, rng, length)
        x = torch.tensor([ids[:-1]], device=args.device)
        T = x.shape[1]
        pred = model(x, pos_all[:T], pe=pe_all[:T])[0].argmax(-1)
        ok += int(pred[a - 1:a + 4].tolist() == ids[a:a + 5])
    model.train()
    return ok / n


def yacs_text(pc):
    lines = []
    for k in sorted(pc):
        v = pc[k]
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif v is None:
            v = "null"
        lines.append("%s: %s" % (k, v))
    return "\n".join(lines) + "\n"


def export(model, args, say):
    """Official-layout checkpoint in RUN_DIR/official, then the converter into
    args.out, then args.out/tokenizer.model."""
    import convert_checkpoint
    import spm_export
    off = os.path.join(args.run_dir, "official")
    best = os.path.join(off, "best_model")
    os.makedirs(best, exist_ok=True)
    main_sd, enc_sd = model.official_state_dicts()
    torch.save(main_sd, os.path.join(best, "pytorch_model.bin"))
    torch.save(enc_sd, os.path.join(best, "pytorch_model_1.bin"))
    with open(os.path.join(off, "config.json"), "w") as f:
        json.dump(model.hf_config(), f, indent=2)
    with open(os.path.join(off, "pe_config.json"), "w") as f:
        f.write(yacs_text(model.pe_config()))
    with open(os.path.join(off, "train_args.json"), "w") as f:
        json.dump(dict(vars(args), block_size=args.seq_len), f, indent=2)
    tmp = args.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rc = convert_checkpoint.main(["--checkpoint", best, "--out", tmp, "--dtype", args.dtype])
    if rc != 0:
        raise SystemExit("convert_checkpoint failed (rc %d)" % rc)
    spm_export.write(os.path.join(tmp, "tokenizer.model"))
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    for name in sorted(os.listdir(args.out)):
        say("wrote %s (%d bytes)" % (os.path.join(args.out, name),
                                     os.path.getsize(os.path.join(args.out, name))))


def model_config(args, vocab_size):
    return SeqPeLMConfig(
        vocab_size=vocab_size, dim=args.dim, n_layers=args.n_layers, n_heads=args.n_heads,
        ffn_dim=4 * args.dim, context_length=args.seq_len, tied=args.tied,
        pe_embed_dim=args.pe_dim, pe_heads=args.pe_heads, pe_layers=args.pe_layers,
        max_digits=args.max_digits, pe_out_dim=args.dim, pe_max_position=args.pe_max_position)


def main(argv=None):
    args = parse_args(argv)
    say = rope_train.start_run(args)
    tok = Tokenizer()
    gen = DocumentGenerator(tok)
    cfg = model_config(args, tok.vocab_size)
    model = SeqPeLM(cfg)

    # Numerical self-check of the attention-bias path (seqpe_selfcheck.py).
    import seqpe_selfcheck
    err = seqpe_selfcheck.check_bias_path(model, [0, 7, 255, 100000, 131071, 999999])
    if err > 1e-4:
        raise SystemExit("attention bias self-check failed: max rel error %.2e" % err)
    if args.pe_qk_init == "zero_q":
        # pq = 0 at init: no random position bias for the task loss to fight,
        # and no task gradient into the encoder until pe_qk's q half grows.
        with torch.no_grad():
            P = cfg.pe_out_dim
            model.gpt2.transformer.pe_qk.weight[:P].zero_()
            model.gpt2.transformer.pe_qk.bias[:P].zero_()
    model = model.to(args.device)

    no_decay_names = ("pos_of_seqpe_embed", "token_of_seqpe_embed", "cls_token_embed")
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() == 2 and not any(s in n for s in no_decay_names) else no_decay).append(p)
    opt, ckpt_path, step, elapsed = rope_train.optimizer_and_resume(args, model, decay, no_decay, say)
    if step == 0:
        say(f"args {json.dumps(vars(args))}")
        n_main = sum(p.numel() for p in model.gpt2.parameters())
        n_pe = sum(p.numel() for p in model.seqpe.parameters())
        say(f"config {json.dumps(cfg.to_dict())} params main {n_main} encoder {n_pe} "
            f"(bias self-check max rel error {err:.1e})")

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "config": cfg.to_dict(), "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)

    sampler = PeSampler(args)
    heads = [int(h) for h in args.retrieval_heads.split(",")]
    layer = args.retrieval_layer % cfg.n_layers
    offsets = [int(o) for o in args.eval_offsets.split(",") if o.strip()]
    dev = args.device
    model.train()
    t_last = time.time()
    stopped_early = False
    while step < args.steps:
        if args.time_budget and elapsed >= args.time_budget:
            stopped_early = True
            say(f"time budget {args.time_budget:.0f} s spent at step {step}: stopping")
            break
        x, y, ans, qpos, kpos = rope_train.make_batch(gen, args, step)
        km = rope_train.key_digit_mask(x, y, tok)
        x, y, ans, km, qpos, kpos = (t.to(dev) for t in (x, y, ans, km, qpos, kpos))
        T = x.shape[1]
        prng = random.Random(args.seed * 1_000_003 + step + 7_000_000_000)
        shift = sampler.shift(prng)
        pivots, cands, labels = sampler.contrastive(prng, args.contrastive_batch)
        t_idx, students = sampler.transfer(prng, args.transfer_batch)

        # One encoder pass for every position that needs gradients.
        main_pos = list(range(shift, shift + T))
        flat_c = [c for row in cands for c in row]
        flat_s = [s for row in students for s in row]
        all_pos = torch.tensor(main_pos + pivots + flat_c + flat_s, dtype=torch.long, device=dev)
        pe_all = model.pe(all_pos)
        n0, n1, n2 = T, T + len(pivots), T + len(pivots) + len(flat_c)
        pe_main, pe_piv, pe_cand, pe_stu = pe_all[:n0], pe_all[n0:n1], pe_all[n1:n2], pe_all[n2:]
        with torch.no_grad():
            pe_window = model.pe(torch.arange(args.seq_len, device=dev))
        pe_teacher = pe_window[torch.tensor(t_idx, device=dev).view(-1)]

        for g in opt.param_groups:
            g["lr"] = rope_train.lr_at(step, args)
        logits, attn = model(x, torch.tensor(main_pos, device=dev), attn_layer=layer, pe=pe_main)
        lm, key, acc, att = rope_train.task_losses(logits, attn, y, ans, km, qpos, kpos, heads)
        ctr, ctr_acc = contrastive_loss(pe_piv, pe_cand.view(len(pivots), -1, pe_cand.shape[-1]),
                                        torch.tensor(labels, device=dev))
        trf = transfer_loss(pe_teacher.view(len(students), -1, pe_stu.shape[-1]),
                            pe_stu.view(len(students), -1, pe_stu.shape[-1]), cfg.n_heads,
                            args.transfer_reduction)
        task = args.lm_weight * lm + args.answer_weight * key + args.attn_weight * att
        loss = task + args.contrastive_weight * ctr + args.transfer_weight * trf
        if not torch.isfinite(loss):
            raise SystemExit(f"non-finite loss at step {step}: lm {lm} key {key} att {att} "
                             f"ctr {ctr} trf {trf}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        now = time.time()
        dt = now - t_last
        elapsed += dt
        t_last = now
        if step % args.log_every == 0 or step == 1:
            # Spread of PE over the block's positions (mean over dims of the
            # std across positions): near 0 means PE no longer depends on p.
            pe_std = pe_main.detach().std(0).mean().item() if T > 1 else 0.0
            say(f"step {step} T {T} shift {shift} lm {lm.item():.3f} key {key.item():.3f} "
                f"att {att.item():.3f} acc {acc.item():.2f} ctr {ctr.item():.3f} "
                f"ctr_acc {ctr_acc.item():.2f} trf {trf.item():.5f} pe_std {pe_std:.4f} loss {loss.item():.3f} "
                f"gnorm {gnorm:.2f} lr {rope_train.lr_at(step - 1, args):.2e} "
                f"step_s {dt:.2f} elapsed {elapsed:.0f}s")
        if step % args.eval_every == 0 or step == args.steps:
            accs = " ".join(f"@{o}: {evaluate(model, gen, args, o):.3f}" for o in offsets)
            say(f"eval step {step} in-window answer accuracy (block offset) {accs}")
            t_last = time.time()  # evaluation is not training time
        if step % args.ckpt_every == 0 or step == args.steps:
            save()
    save()
    if stopped_early:
        accs = " ".join(f"@{o}: {evaluate(model, gen, args, o):.3f}" for o in offsets)
        say(f"eval step {step} in-window answer accuracy (block offset) {accs}")
    say(f"done: {step} steps, {elapsed:.0f} s of training"
        + (" (stopped early by --time_budget)" if stopped_early else ""))
    export(model.cpu(), args, say)


if __name__ == "__main__":
    main()
