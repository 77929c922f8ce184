#!/usr/bin/python3
"""Pass-key retrieval accuracy on a grid of document lengths x key depths, per
attention policy, through a running headroom-server (the real serving path).

    tools/eval/passkey_eval.py                                  # the full grid, demo model
    tools/eval/passkey_eval.py --lengths 1K,4K --depths 0,50,100 --trials 2 \
        --policies longheads:bound --out_dir /tmp/pk

Documents come from tools/demo_model/data.py (grammar filler, a 5-digit key
sentence after a fraction `depth` of the filler, the question at the end),
seeded per (length, depth, trial), so every policy reads the same documents.
Their length is checked with the server's Tokenize RPC (and rescaled when the
served model's tokenizer is not the demo's). Greedy decoding, --max_tokens
tokens; a trial is correct when the generated text (leading spaces stripped)
starts with the 5 digits.

Cells run in order of length, then policy, then depth. A cell is "not run"
(with the reason in the results) when it is predicted to overrun
--time_budget, or for `full` when its predicted time per trial (quadratic in
the length from the last measured `full` cell) exceeds --full_max_trial_s.

Writes OUT_DIR/passkey_<model>.json and .md, and a heat map per policy
OUT_DIR/passkey_<model>_<policy>.png.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hr_eval as H  # noqa: E402

sys.path.insert(0, os.path.join(H.REPO, "tools", "demo_model"))
from data import DocumentGenerator  # noqa: E402

pb = H.pb


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def parse_length(s):
    s = s.strip().upper()
    if s.endswith("K"):
        return int(float(s[:-1]) * 1024)
    return int(s)


def fmt_len(n):
    return "%dK" % (n // 1024) if n % 1024 == 0 else str(n)


class Documents:
    """Pass-key documents of about n server tokens, calibrated per length with
    the Tokenize RPC."""

    def __init__(self, server, seed):
        self.server = server
        self.gen = DocumentGenerator()
        self.seed = seed
        self.scale = {}  # length -> generator tokens per server token
        self.cache = {}  # (length, depth, trial) -> Document, for the current length only

    def _make(self, n_gen, depth, trial, length):
        s = self.seed * 1_000_003 + length * 1009 + int(round(depth * 1000)) * 31 + trial
        return self.gen.document(n_gen, depth, seed=s)

    def get(self, length, depth, trial):
        if length not in self.scale:
            # Two rounds: generator tokens per server token, then refined.
            self.scale[length] = 1.0
            for _ in range(2):
                probe = self._make(int(round(length * self.scale[length])), 0.5, 0, length)
                actual = len(self.server.tokenize(probe.prompt, add_bos=True))
                if abs(actual - length) <= max(2, length // 500):
                    break
                log("note: %d generator tokens are %d server tokens; rescaling" % (
                    probe.n_tokens, actual))
                self.scale[length] *= length / actual
        key = (length, depth, trial)
        if key not in self.cache:
            if any(k[0] != length for k in self.cache):
                self.cache.clear()
            n_gen = max(16, int(round(length * self.scale[length])))
            self.cache[key] = self._make(n_gen, depth, trial, length)
        return self.cache[key]


def run_trial(server, doc, options, max_tokens, timeout_s):
    t0 = time.time()
    r = server.generate(pb.GenerateRequest(
        text=doc.prompt, sampling=pb.SamplingParams(temperature=0.0),
        stop=pb.StopCriteria(max_tokens=max_tokens), long_context=options), timeout_s=timeout_s)
    wall = time.time() - t0
    ok = r["text"].lstrip().startswith(doc.key)
    return ok, wall, r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    H.add_server_args(p, os.path.join(H.REPO, "models", "demo.gguf"))
    p.add_argument("--lengths", default="1K,2K,4K,8K,16K,32K,64K,128K",
                   help="document lengths in server tokens (BOS included); K = 1024")
    p.add_argument("--depths", default="0,10,20,30,40,50,60,70,80,90,100",
                   help="key depths, percent of the filler before the key")
    p.add_argument("--trials", type=int, default=5, help="documents per cell")
    p.add_argument("--policies", default=",".join(H.ALL_POLICIES),
                   help="comma-separated: " + ", ".join(H.ALL_POLICIES))
    p.add_argument("--atten_length", type=int, default=0, help="0: the server's default")
    p.add_argument("--chunk_size", type=int, default=0, help="0: the server's default")
    p.add_argument("--prefill_selection", default="", help="token | chunk (empty: server default)")
    p.add_argument("--max_tokens", type=int, default=8, help="generated tokens per trial")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--time_budget", type=float, default=0,
                   help="seconds for the whole grid (0: none); cells predicted to overrun it are "
                        "not run")
    p.add_argument("--full_max_trial_s", type=float, default=30,
                   help="`full` is not run where its predicted seconds per trial (quadratic in "
                        "the length) exceed this")
    p.add_argument("--request_timeout_s", type=float, default=3600)
    p.add_argument("--out_dir", default=os.path.join(H.REPO, "bench", "results"))
    p.add_argument("--name", default="", help="output basename (default passkey_<model>)")
    p.add_argument("--label", default="", help="a note for the report's title, e.g. 'partial grid'")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    lengths = sorted(parse_length(x) for x in args.lengths.split(",") if x.strip())
    depths = [float(x) for x in args.depths.split(",") if x.strip()]
    policies = [H.canonical_policy(x) for x in args.policies.split(",") if x.strip()]
    if not args.server and not os.path.exists(args.model):
        sys.exit("no model at %s" % args.model)

    started = time.time()
    machine = H.machine_line()
    server = H.open_server(args, log, extra=[
        "--prefix_cache=false", "--max_input_tokens", str(max(131072, int(lengths[-1] * 1.05) + 64))])
    cells = []
    try:
        info = server.info
        d = info.long_context_defaults
        atten = args.atten_length or d.atten_length
        chunk = args.chunk_size or (args.atten_length // 8 if args.atten_length else d.chunk_size)
        model = info.model_name.lower().replace(" ", "_") or "model"
        name = args.name or "passkey_" + model
        log("model %s (trained context %d), atten_length %d, chunk_size %d, summary default %s"
            % (info.model_name, info.trained_context, atten, chunk, pb.SummaryKind.Name(d.summary)))
        docs = Documents(server, args.seed)
        # policy -> (length, [seconds per trial of each cell]) of its last measured length
        last_time = {}
        for length in lengths:
            for policy in policies:
                opts = H.long_context_options(policy, chunk, atten, args.prefill_selection)
                for depth in depths:
                    cell = {"policy": policy, "length": length, "depth": depth, "trials": args.trials}
                    reason = None
                    if policy in last_time:
                        l0, ts = last_time[policy]
                        t0 = sum(ts) / len(ts)
                        power = 2.0 if policy == "full" else 1.1
                        est = t0 * (length / l0) ** power
                        cell["predicted_seconds_per_trial"] = est
                        if policy == "full" and est > args.full_max_trial_s:
                            reason = ("full attention is quadratic: predicted %.0f s per trial "
                                      "(from %.1f s at %s) > --full_max_trial_s %g"
                                      % (est, t0, fmt_len(l0), args.full_max_trial_s))
                        elif args.time_budget and time.time() - started + est * args.trials > args.time_budget:
                            reason = "predicted %.0f s would overrun --time_budget %g s" % (
                                est * args.trials, args.time_budget)
                    elif args.time_budget and time.time() - started > args.time_budget:
                        reason = "--time_budget %g s spent" % args.time_budget
                    if reason:
                        cell.update(status="not run", reason=reason)
                        cells.append(cell)
                        continue
                    ok_n, secs, prompt_tokens, prefill, fails = 0, [], [], [], []
                    for t in range(args.trials):
                        doc = docs.get(length, depth / 100.0, t)
                        ok, wall, r = run_trial(server, doc, opts, args.max_tokens,
                                                args.request_timeout_s)
                        ok_n += ok
                        secs.append(wall)
                        prompt_tokens.append(r["prompt_tokens"])
                        prefill.append(r["prefill_seconds"])
                        if not ok and len(fails) < 3:
                            fails.append({"key": doc.key, "output": r["text"]})
                        if args.verbose:
                            log("  %s %s depth %g trial %d: key %s -> %r (%.1f s)" % (
                                policy, fmt_len(length), depth, t, doc.key, r["text"], wall))
                    cell.update(status="run", correct=ok_n, accuracy=ok_n / args.trials,
                                seconds=sum(secs), seconds_per_trial=sum(secs) / len(secs),
                                prefill_seconds_per_trial=sum(prefill) / len(prefill),
                                prompt_tokens_mean=sum(prompt_tokens) / len(prompt_tokens),
                                failures=fails)
                    if last_time.get(policy, (None,))[0] != length:
                        last_time[policy] = (length, [])
                    last_time[policy][1].append(cell["seconds_per_trial"])
                    cells.append(cell)
                    log("%-19s %5s depth %5.1f%%: %d/%d  %.1f s" % (
                        policy, fmt_len(length), depth, ok_n, args.trials, cell["seconds"]))
        out = {
            "what": "pass-key retrieval accuracy (greedy; correct = output starts with the 5 digits)",
            "label": args.label, "model": info.model_name,
            "model_file": args.model if not args.server else "(remote server)",
            "server": args.server or "started here: " + " ".join(server.command),
            "trained_context": info.trained_context,
            "long_context": {"atten_length": atten, "chunk_size": chunk,
                             "prefill_selection": args.prefill_selection or pb.PrefillSelection.Name(
                                 d.prefill_selection),
                             "gqa_selection": pb.GqaSelection.Name(d.gqa_selection)},
            "grid": {"lengths": lengths, "depths": depths, "trials": args.trials,
                     "policies": policies, "max_tokens": args.max_tokens, "seed": args.seed,
                     "time_budget": args.time_budget, "full_max_trial_s": args.full_max_trial_s},
            "cells": cells, "summary": summarize(cells, policies, lengths),
            **H.run_record("tools/eval/passkey_eval.py", machine, started),
        }
    finally:
        server.close()

    base = H.write_json(args.out_dir, name, out)
    pngs = [plot(out, policy, base) for policy in policies]
    with open(base + ".md", "w") as f:
        f.write(markdown(out, name, pngs))
    log("wrote %s.{json,md} and %d heat maps" % (base, len(pngs)))
    for policy, s in out["summary"].items():
        log("%s: %s" % (policy, s["text"]))
    return 0


def summarize(cells, policies, lengths):
    out = {}
    for policy in policies:
        run = [c for c in cells if c["policy"] == policy and c["status"] == "run"]
        per_len = {}
        for n in lengths:
            cs = [c for c in run if c["length"] == n]
            if cs:
                per_len[str(n)] = {"accuracy": sum(c["correct"] for c in cs) / sum(c["trials"] for c in cs),
                                   "min_cell_accuracy": min(c["accuracy"] for c in cs),
                                   "cells": len(cs)}
        total = sum(c["trials"] for c in run)
        not_run = sum(1 for c in cells if c["policy"] == policy and c["status"] != "run")
        acc = sum(c["correct"] for c in run) / total if total else None
        out[policy] = {"accuracy": acc, "trials": total, "cells_not_run": not_run, "by_length": per_len,
                       "text": ("%.3f over %d trials" % (acc, total) if total else "nothing run")
                       + (", %d cells not run" % not_run if not_run else "")}
    return out


def markdown(out, name, pngs):
    g, lc = out["grid"], out["long_context"]
    s = ["# Pass-key retrieval: %s%s\n" % (out["model"], " (%s)" % out["label"] if out["label"] else "")]
    s.append("Command: `%s`\n" % out["command"])
    s.append("- Date %s, commit %s; %s; wall %.0f s" % (out["date"], out["commit"], out["machine"],
                                                         out["wall_seconds"]))
    s.append("- Server: `%s`" % out["server"])
    s.append("- Model trained at %d tokens; atten_length %d, chunk_size %d, prefill selection %s, "
             "GQA %s (per request)" % (out["trained_context"], lc["atten_length"], lc["chunk_size"],
                                       lc["prefill_selection"], lc["gqa_selection"]))
    s.append("- Grid: lengths %s tokens x depths %s %% x %d trials; greedy, %d tokens; correct = "
             "the output (leading spaces stripped) starts with the key" % (
                 ", ".join(fmt_len(n) for n in g["lengths"]),
                 ", ".join("%g" % x for x in g["depths"]), g["trials"], g["max_tokens"]))
    s.append("")
    s.append("## Summary\n")
    rows = []
    for policy, sm in out["summary"].items():
        row = [policy]
        for n in g["lengths"]:
            b = sm["by_length"].get(str(n))
            row.append("%.0f%% (min %.0f%%)" % (100 * b["accuracy"], 100 * b["min_cell_accuracy"])
                       if b else "not run")
        rows.append(row)
    s.append("Accuracy over depths per length (min: the worst depth cell).\n")
    s.append(H.markdown_table(["policy"] + [fmt_len(n) for n in g["lengths"]], rows))
    by = {(c["policy"], c["length"], c["depth"]): c for c in out["cells"]}
    for policy, png in zip(g["policies"], pngs):
        s.append("## %s\n" % policy)
        rows = []
        for dpt in g["depths"]:
            row = ["%g%%" % dpt]
            for n in g["lengths"]:
                c = by[(policy, n, dpt)]
                row.append("%d/%d" % (c["correct"], c["trials"]) if c["status"] == "run" else "n/r")
            rows.append(row)
        secs = ["s/trial"]
        for n in g["lengths"]:
            cs = [by[(policy, n, dpt)] for dpt in g["depths"] if by[(policy, n, dpt)]["status"] == "run"]
            secs.append("%.1f" % (sum(c["seconds_per_trial"] for c in cs) / len(cs)) if cs else "-")
        rows.append(secs)
        s.append(H.markdown_table(["depth"] + [fmt_len(n) for n in g["lengths"]], rows))
        reasons = sorted({c["reason"] for c in out["cells"] if c["policy"] == policy
                          and c["status"] != "run"})
        for r in reasons:
            s.append("- n/r (not run): " + r)
        s.append("\n![%s](%s)\n" % (policy, os.path.basename(png)))
    return "\n".join(s)


def plot(out, policy, base):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    g = out["grid"]
    by = {(c["length"], c["depth"]): c for c in out["cells"] if c["policy"] == policy}
    acc = np.full((len(g["depths"]), len(g["lengths"])), np.nan)
    for i, dpt in enumerate(g["depths"]):
        for j, n in enumerate(g["lengths"]):
            c = by[(n, dpt)]
            if c["status"] == "run":
                acc[i, j] = c["accuracy"]
    fig, ax = plt.subplots(figsize=(2.5 + 0.7 * len(g["lengths"]), 1.6 + 0.35 * len(g["depths"])),
                           dpi=110)
    cmap = plt.get_cmap("RdYlGn").copy()
    cmap.set_bad("#d0d0d0")
    im = ax.imshow(np.ma.masked_invalid(acc), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            txt = "n/r" if np.isnan(acc[i, j]) else "%d" % round(100 * acc[i, j])
            ax.text(j, i, txt, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(g["lengths"])), [fmt_len(n) for n in g["lengths"]])
    ax.set_yticks(range(len(g["depths"])), ["%g%%" % x for x in g["depths"]])
    ax.set_xlabel("document length (tokens)")
    ax.set_ylabel("key depth")
    ax.set_title("%s, %s: pass-key accuracy %%\n(%d trials/cell, trained at %d, atten_length %d)" % (
        out["model"], policy, g["trials"], out["trained_context"], out["long_context"]["atten_length"]),
        fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    path = "%s_%s.png" % (base, policy.replace(":", "_"))
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
