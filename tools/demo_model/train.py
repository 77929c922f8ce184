#!/usr/bin/python3
"""Trains the demo model from scratch on the CPU and writes models/demo.gguf.

    nice -n 10 /usr/bin/python3 tools/demo_model/train.py

Seeded and deterministic (fixed thread count; every step's batch is a pure
function of --seed and the step number). Resumable: the run directory keeps
the latest checkpoint; rerunning the same command continues from it. Logs
to RUN_DIR/train.log. See tools/demo_model/README.md.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import DocumentGenerator  # noqa: E402
from model import Config, Llama  # noqa: E402
from tokenizer import EOS, Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_dir", default=os.path.join(HERE, "run"))
    p.add_argument("--out", default=os.path.join(REPO, "models", "demo.gguf"))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq_len", type=int, default=256, help="trained context (llama.context_length)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--answer_weight", type=float, default=4.0,
                   help="weight of the mean answer-digit loss")
    p.add_argument("--lm_weight", type=float, default=0.25,
                   help="weight of the mean language-modelling loss on the filler (a full "
                        "weight delays the copy circuit: the key loss then plateaus at ln 10)")
    p.add_argument("--attn_weight", type=float, default=1.0,
                   help="weight of the retrieval-head attention loss (see README)")
    p.add_argument("--retrieval_heads", default="0,3",
                   help="query heads taught to attend to the key digit")
    p.add_argument("--retrieval_layer", type=int, default=-1,
                   help="layer of the retrieval heads (-1: the last)")
    p.add_argument("--curriculum", type=int, default=150,
                   help="steps over which the longest document grows from 64 to seq_len")
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--n_layers", type=int, default=4)
    p.add_argument("--n_heads", type=int, default=6)
    p.add_argument("--n_kv_heads", type=int, default=2)
    p.add_argument("--ffn_dim", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu (the reference) or cuda (pilots only)")
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--ckpt_every", type=int, default=25)
    p.add_argument("--short_frac", type=float, default=0.5,
                   help="fraction of steps whose batch is one shorter length (uniform)")
    return p.parse_args()


def make_batch(gen, args, step):
    """The batch of `step`: a pure function of (seed, step)."""
    rng = random.Random(args.seed * 1_000_003 + step)
    seqs = []
    if step < args.curriculum:
        cap = 64 + (args.seq_len - 64) * step // args.curriculum
        length = rng.randint(32, cap)
        for _ in range(args.batch):
            seqs.append(_plain(gen, rng, length))
    elif rng.random() < args.short_frac:
        length = rng.randint(32, args.seq_len)  # one shorter length for the whole batch
        for _ in range(args.batch):
            seqs.append(_plain(gen, rng, length))
    else:
        for _ in range(args.batch):
            seqs.append(gen.training_sequence(rng, args.seq_len))
    T = max(len(s) for s, _ in seqs) - 1
    x = torch.full((len(seqs), T), EOS, dtype=torch.long)
    y = torch.full((len(seqs), T), -100, dtype=torch.long)
    ans = torch.full((len(seqs), T), False)
    # Retrieval pairs: the query at answer position a-1+j (input "▁" or digit
    # j) should look at the key's digit j (the first five digits of the text).
    qpos = torch.zeros((len(seqs), 5), dtype=torch.long)
    kpos = torch.zeros((len(seqs), 5), dtype=torch.long)
    digit_ids = set(gen.tok.digit_ids)
    for b, (ids, a) in enumerate(seqs):
        n = len(ids) - 1
        x[b, :n] = torch.tensor(ids[:-1])
        y[b, :n] = torch.tensor(ids[1:])
        ans[b, a - 1:a - 1 + 5] = True  # targets that are the 5 answer digits
        key_digits = [i for i in range(a - 1) if ids[i] in digit_ids][:5]
        assert len(key_digits) == 5
        qpos[b] = torch.arange(a - 1, a + 4)
        kpos[b] = torch.tensor(key_digits)
    return x, y, ans, qpos, kpos


def _plain(gen, rng, length):
    """A plain document whose ids are exactly `length` + 1 tokens long."""
    doc = gen.document(length + 1 - len(gen.tok.encode_sentence("00000.")) - 1, rng.random(), rng=rng)
    ids = doc.ids + doc.answer_ids
    return ids, len(doc.ids) + 1


def task_losses(logits, attn, y, ans, key_mask, qpos, kpos, heads):
    """LM loss on the filler, the answer's loss and accuracy, and the retrieval
    heads' attention loss, from logits and one layer's attention [B, H, T, T]."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none",
                         ignore_index=-100).view(y.shape)
    valid = (y != -100) & ~ans & ~key_mask
    lm = ce[valid].mean()
    key = ce[ans].mean()
    acc = (logits.argmax(-1)[ans] == y[ans]).float().view(-1, 5).all(-1).float().mean()
    # The retrieval heads' probability of the key digit.
    b = torch.arange(y.shape[0], device=y.device)[:, None]
    p = attn[:, heads][b, :, qpos, kpos]  # [B, 5, len(heads)]
    att = -torch.log(p + 1e-6).mean()
    return lm, key, acc, att


def losses(model, x, y, ans, key_mask, qpos, kpos, heads, layer=-1):
    logits, attn = model(x, attn_layer=layer % model.cfg.n_layers)
    return task_losses(logits, attn, y, ans, key_mask, qpos, kpos, heads)


def key_digit_mask(x, y, tok):
    """Targets that are digits other than the answer (the key inside the
    document is random: no LM loss on it)."""
    digits = torch.tensor(tok.digit_ids)
    return torch.isin(y, digits)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def evaluate(model, gen, args, n=48):
    """Greedy answer accuracy (all 5 digits, teacher-forced argmax) on fixed
    in-window documents of random length and depth."""
    model.eval()
    rng = random.Random(999)
    ok = 0
    for i in range(n):
        length = rng.randint(64, args.seq_len)
        ids, a = _plain(gen, rng, length)
        x = torch.tensor([ids[:-1]], device=args.device)
        pred = model(x)[0].argmax(-1)
        ok += int(pred[a - 1:a + 4].tolist() == ids[a:a + 5])
    model.train()
    return ok / n


def start_run(args):
    """Threads and seeds from args; returns say(msg), which prints a timed line
    and appends it to RUN_DIR/train.log."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    os.makedirs(args.run_dir, exist_ok=True)
    log = open(os.path.join(args.run_dir, "train.log"), "a")

    def say(msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    return say


def optimizer_and_resume(args, model, decay, no_decay, say):
    """AdamW (weight decay 0.05 on `decay` only) and, when RUN_DIR/checkpoint.pt
    exists, the model and optimizer state from it. Returns (opt, checkpoint
    path, step, seconds trained)."""
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    ckpt_path = os.path.join(args.run_dir, "checkpoint.pt")
    step, elapsed = 0, 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=args.device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        say(f"resumed at step {step} ({elapsed:.0f} s trained)")
    return opt, ckpt_path, step, elapsed


def main():
    args = parse_args()
    say = start_run(args)
    tok = Tokenizer()
    gen = DocumentGenerator(tok)
    cfg = Config(vocab_size=tok.vocab_size, dim=args.dim, n_layers=args.n_layers,
                 n_heads=args.n_heads, n_kv_heads=args.n_kv_heads, ffn_dim=args.ffn_dim,
                 context_length=args.seq_len)
    model = Llama(cfg).to(args.device)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt, ckpt_path, step, elapsed = optimizer_and_resume(args, model, decay, no_decay, say)
    if step == 0:
        say(f"args {json.dumps(vars(args))}")
        say(f"config {json.dumps(cfg.to_dict())} params {sum(p.numel() for p in model.parameters())}")

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "config": cfg.to_dict(), "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)

    heads = [int(h) for h in args.retrieval_heads.split(",")]
    model.train()
    t_last = time.time()
    while step < args.steps:
        x, y, ans, qpos, kpos = make_batch(gen, args, step)
        km = key_digit_mask(x, y, tok)
        x, y, ans, km, qpos, kpos = (t.to(args.device) for t in (x, y, ans, km, qpos, kpos))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        lm, key, acc, att = losses(model, x, y, ans, km, qpos, kpos, heads,
                                     args.retrieval_layer)
        loss = args.lm_weight * lm + args.answer_weight * key + args.attn_weight * att
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        if step % 5 == 0 or step == 1:
            say(f"step {step} T {x.shape[1]} lm {lm.item():.3f} key {key.item():.3f} att {att.item():.3f} "
                f"acc {acc.item():.2f} gnorm {gnorm:.2f} lr {lr_at(step - 1, args):.2e} "
                f"elapsed {elapsed:.0f}s")
        if step % args.eval_every == 0 or step == args.steps:
            say(f"eval step {step} in-window answer accuracy {evaluate(model, gen, args):.3f}")
            t_last = time.time()  # evaluation is not training time
        if step % args.ckpt_every == 0 or step == args.steps:
            save()
    say(f"done: {step} steps, {elapsed:.0f} s of training")
    import export_gguf
    export_gguf.export(model.cpu(), cfg, tok, args.out)
    say(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
