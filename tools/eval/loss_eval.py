#!/usr/bin/python3
"""Per-token loss by position on long documents, per attention policy, through
a running headroom-server (the on-CPU analogue of LongHeads' perplexity-versus-
length curve, arXiv 2402.10685 Fig. 1).

    tools/eval/loss_eval.py                       # stories260K, 16K-token documents
    tools/eval/loss_eval.py --length 4096 --docs 1 --policies longheads --out_dir /tmp/x

1. Samples stories from the model itself through the server (Generate from
   BOS, temperature 1, each with its own seed, until the model starts the next
   story with BOS; stories longer than --max_story_tokens are dropped).
2. Joins them as the model was trained (llama2.c: BOS story BOS story ...)
   into --docs documents of --length tokens, each from its own stories.
3. Scores every document under each policy with GenerateRequest.prompt_logprobs
   (token input, so exactly these ids) and buckets -log p by position
   (log-spaced buckets).
4. The in-window reference: every story alone (BOS + story, fewer tokens than
   --atten_length, so every policy is plain causal attention inside the
   trained window) gives the loss of the same tokens in-window; a bucket's
   ratio is its mean loss over the mean in-window loss of exactly its tokens
   (paired, so the stories' own difficulty cancels).

Writes OUT_DIR/loss_<model>.json, .md and .png. stories260K was trained at 512
tokens but its GGUF says llama.context_length 2048 (the server's default
atten_length), so --atten_length 512 --chunk_size 64 are passed explicitly.
"""

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hr_eval as H  # noqa: E402

pb = H.pb


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def bucket_edges(length, first=32):
    """[1, 32), [32, 64), ... powers of two, the last ending at length."""
    edges = [1]
    e = first
    while e < length:
        edges.append(e)
        e *= 2
    edges.append(length)
    return edges


def sample_stories(server, n_tokens_needed, seed, max_story_tokens, temperature, log_fn):
    """Stories (lists of ids, no BOS) totalling at least n_tokens_needed ids."""
    bos = server.info.bos_id

    def one(s):
        r = server.generate(pb.GenerateRequest(
            tokens=pb.TokenIds(ids=[bos]), sampling=pb.SamplingParams(temperature=temperature, seed=s),
            stop=pb.StopCriteria(max_tokens=max_story_tokens + 1,
                                 stop_token_ids=[bos, server.info.eos_id])), timeout_s=600)
        ids = r["ids"]
        if r["finish"] != "FINISH_REASON_STOP_TOKEN" or len(ids) < 2:
            return None  # too long (or empty): dropped
        return ids[:-1]

    stories, total, next_seed, dropped = [], 0, seed * 100003, 0
    t0 = time.time()
    with ThreadPoolExecutor(32) as ex:
        while total < n_tokens_needed:
            batch = list(ex.map(one, range(next_seed, next_seed + 32)))
            next_seed += 32
            for s in batch:
                if s is None:
                    dropped += 1
                    continue
                stories.append(s)
                total += len(s) + 1
    log_fn("sampled %d stories (%d tokens with BOS; %d too long dropped) in %.1f s"
           % (len(stories), total, dropped, time.time() - t0))
    return stories, dropped


def build_documents(stories, bos, length, n_docs):
    """n_docs documents of `length` ids: BOS s BOS s ... (the last story cut),
    each document from its own consecutive stories. Returns the documents and,
    per document, the (story index, offset in the story) of every position."""
    docs, origins, k = [], [], 0
    for _ in range(n_docs):
        ids, org = [], []
        while len(ids) < length:
            if k >= len(stories):
                raise RuntimeError("not enough stories")
            s = stories[k]
            ids += [bos] + s
            org += [(k, j) for j in range(len(s) + 1)]  # j: position in BOS + story
            k += 1
        docs.append(ids[:length])
        origins.append(org[:length])
    return docs, origins, k


def score(server, ids, options, timeout_s):
    r = server.generate(pb.GenerateRequest(tokens=pb.TokenIds(ids=ids), prompt_logprobs=True,
                                           long_context=options, stop=pb.StopCriteria(max_tokens=1)),
                        timeout_s=timeout_s)
    lp = r["prompt_logprobs"]
    if r["cached_tokens"]:
        raise RuntimeError("%d prompt tokens came from the prefix cache and were not scored "
                           "(run the server with --prefix_cache=false)" % r["cached_tokens"])
    missing = [p for p in range(1, len(ids)) if p not in lp]
    if missing:
        raise RuntimeError("no log-prob for %d positions (first %d)" % (len(missing), missing[0]))
    return [None] + [-lp[p] for p in range(1, len(ids))], r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    H.add_server_args(p, os.path.join(os.path.dirname(H.REPO), "shared", "models", "stories260K.gguf"))
    p.add_argument("--length", type=int, default=16384, help="tokens per document")
    p.add_argument("--docs", type=int, default=4, help="documents per policy")
    p.add_argument("--full_docs", type=int, default=-1,
                   help="documents for `full` (quadratic; -1: --docs)")
    p.add_argument("--policies", default="full,window,longheads:bound")
    p.add_argument("--atten_length", type=int, default=512, help="0: the server's default")
    p.add_argument("--chunk_size", type=int, default=64, help="0: the server's default")
    p.add_argument("--prefill_selection", default="", help="token | chunk (empty: server default)")
    p.add_argument("--trained_length", type=int, default=0,
                   help="the model's real training length, for the report (0: 512 for stories260K "
                        "(llama2.c), else the server's trained_context)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max_story_tokens", type=int, default=-1,
                   help="longest story kept (-1: atten_length - 2, so a story fits the window)")
    p.add_argument("--out_dir", default=os.path.join(H.REPO, "bench", "results"))
    p.add_argument("--name", default="", help="output basename (default loss_<model>)")
    p.add_argument("--request_timeout_s", type=float, default=3600)
    p.add_argument("--from_json", default="",
                   help="only rewrite the .md and .png of this results file (no server)")
    args = p.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            out = json.load(f)
        base = args.from_json[:-len(".json")]
        with open(base + ".md", "w") as f:
            f.write(markdown(out, os.path.basename(base)))
        plot(out, base + ".png")
        log("rewrote %s.{md,png}" % base)
        return 0

    policies = [H.canonical_policy(x) for x in args.policies.split(",") if x.strip()]
    started = time.time()
    machine = H.machine_line()
    server = H.open_server(args, log, extra=["--prefix_cache=false",
                                             "--max_input_tokens", str(max(131072, args.length))])
    try:
        info = server.info
        defaults = info.long_context_defaults
        atten = args.atten_length or defaults.atten_length
        chunk = args.chunk_size or (args.atten_length // 8 if args.atten_length else defaults.chunk_size)
        max_story = args.max_story_tokens if args.max_story_tokens > 0 else atten - 2
        model = info.model_name.lower().replace(" ", "_") or "model"
        name = args.name or "loss_" + model
        log("model %s (trained_context in file %d), atten_length %d, chunk_size %d"
            % (info.model_name, info.trained_context, atten, chunk))

        stories, dropped = sample_stories(server, args.docs * args.length + atten, args.seed, max_story,
                                          args.temperature, log)
        docs, origins, used = build_documents(stories, info.bos_id, args.length, args.docs)

        # In-window reference: each used story alone.
        t0 = time.time()
        ref_opts = H.long_context_options("full", chunk, atten)
        story_ref = {}
        for k in range(used):
            story_ref[k], _ = score(server, [info.bos_id] + stories[k], ref_opts, args.request_timeout_s)
        log("in-window reference: %d stories scored alone in %.1f s" % (used, time.time() - t0))
        ref = [[None] + [story_ref[k][j] if j > 0 else None for (k, j) in org[1:]] for org in origins]
        # Position 0 of a story (its BOS) is never a target in the reference;
        # in a document, the BOS after a story is a target: left out of the
        # paired ratio, kept in the plain loss.

        edges = bucket_edges(args.length)
        results = {}
        for policy in policies:
            n_docs = args.docs if policy != "full" or args.full_docs < 0 else min(args.docs, args.full_docs)
            opts = H.long_context_options(policy, chunk, atten, args.prefill_selection)
            losses, seconds = [], []
            for d in range(n_docs):
                t0 = time.time()
                loss, _ = score(server, docs[d], opts, args.request_timeout_s)
                seconds.append(time.time() - t0)
                losses.append(loss)
                log("%s doc %d/%d: %.1f s, mean loss %.4f" % (policy, d + 1, n_docs, seconds[-1],
                                                           sum(loss[1:]) / (len(loss) - 1)))
            buckets = []
            for lo, hi in zip(edges[:-1], edges[1:]):
                vals, pv, pr = [], [], []
                for d in range(n_docs):
                    for pos in range(lo, hi):
                        vals.append(losses[d][pos])
                        if ref[d][pos] is not None:
                            pv.append(losses[d][pos])
                            pr.append(ref[d][pos])
                mean = sum(vals) / len(vals)
                sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / max(1, len(vals) - 1))
                buckets.append({
                    "lo": lo, "hi": hi, "tokens": len(vals), "loss": mean,
                    "stderr": sd / math.sqrt(len(vals)),
                    "in_window_loss_same_tokens": sum(pr) / len(pr),
                    "ratio_to_in_window": (sum(pv) / len(pv)) / (sum(pr) / len(pr)),
                })
            results[policy] = {"docs": n_docs, "seconds_per_doc": seconds, "buckets": buckets,
                               "mean_loss": sum(sum(l[1:]) for l in losses) / (n_docs * (args.length - 1))}

        in_window_all = [v for k in range(used) for v in story_ref[k][1:]]
        out = {
            "what": "per-token loss (-log p, nats) by position on documents of sampled stories, per policy",
            "model": info.model_name, "model_file": args.model if not args.server else "(remote server)",
            "server": args.server or "started here: " + " ".join(server.command),
            "trained_context_in_file": info.trained_context,
            "trained_context_actual": args.trained_length or (
                512 if model == "stories260k" else info.trained_context),
            "long_context": {"atten_length": atten, "chunk_size": chunk,
                             "prefill_selection": args.prefill_selection or "server default",
                             "note": "passed explicitly in every request (the server's defaults "
                                     "derive from the trained context the model file declares)"},
            "documents": {"length": args.length, "count": args.docs, "stories_used": used,
                          "stories_sampled": len(stories), "stories_dropped_too_long": dropped,
                          "max_story_tokens": max_story, "temperature": args.temperature,
                          "seed": args.seed},
            "in_window_loss": sum(in_window_all) / len(in_window_all),
            "bucket_edges": edges, "policies": results,
            **H.run_record("tools/eval/loss_eval.py", machine, started),
        }
    finally:
        server.close()

    base = H.write_json(args.out_dir, name, out)
    with open(base + ".md", "w") as f:
        f.write(markdown(out, name))
    plot(out, base + ".png")
    log("wrote %s.{json,md,png}" % base)
    for policy, r in results.items():
        last = r["buckets"][-1]
        log("%s: last bucket [%d, %d) loss %.4f, %.3fx in-window" % (
            policy, last["lo"], last["hi"], last["loss"], last["ratio_to_in_window"]))
    return 0


def fmt_pos(n):
    return "%dK" % (n // 1024) if n >= 1024 and n % 1024 == 0 else str(n)


def markdown(out, name):
    pols = list(out["policies"])
    lc, dc = out["long_context"], out["documents"]
    s = ["# Per-position loss: %s (%s)\n" % (out["model"], name)]
    s.append("Command: `%s`\n" % out["command"])
    s.append("- Date %s, commit %s; %s; wall %.0f s" % (out["date"], out["commit"], out["machine"],
                                                         out["wall_seconds"]))
    s.append("- Server: `%s`" % out["server"])
    s.append("- Model trained at %d tokens (its file declares %d, which the server's defaults would "
             "use): every request passes **atten_length %d, chunk_size %d** explicitly"
             % (out["trained_context_actual"], out["trained_context_in_file"], lc["atten_length"],
                lc["chunk_size"]))
    s.append("- Documents: %d x %d tokens per policy (`full`: %d), built from %d stories the model "
             "sampled itself (temperature %g, at most %d tokens each), joined as in training: "
             "BOS story BOS story ..." % (dc["count"], dc["length"], out["policies"].get(
                 "full", {"docs": dc["count"]})["docs"], dc["stories_used"], dc["temperature"],
                 dc["max_story_tokens"]))
    s.append("- In-window loss: each story alone (BOS + story, inside the %d-token window): **%.4f** "
             "nats/token over all stories used. `ratio` = a bucket's mean loss / the in-window loss "
             "of the same tokens (paired)." % (lc["atten_length"], out["in_window_loss"]))
    s.append("")
    header = ["positions"] + ["%s loss" % p for p in pols] + ["%s ratio" % p for p in pols]
    rows = []
    first = out["policies"][pols[0]]["buckets"]
    for i, b in enumerate(first):
        row = ["[%s, %s)" % (fmt_pos(b["lo"]), fmt_pos(b["hi"]))]
        row += ["%.4f ± %.4f" % (out["policies"][p]["buckets"][i]["loss"],
                                 out["policies"][p]["buckets"][i]["stderr"]) for p in pols]
        row += ["%.3f" % out["policies"][p]["buckets"][i]["ratio_to_in_window"] for p in pols]
        rows.append(row)
    s.append(H.markdown_table(header, rows))
    s.append("Seconds per document: " + "; ".join(
        "%s %.1f" % (p, sum(r["seconds_per_doc"]) / len(r["seconds_per_doc"])) for p, r in
        out["policies"].items()))
    s.append("")
    s.append("![loss by position](%s.png)" % name)
    s.append("")
    return "\n".join(s)


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.5, 7), dpi=110, sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    for policy, r in out["policies"].items():
        xs = [math.sqrt(b["lo"] * b["hi"]) for b in r["buckets"]]
        ax.errorbar(xs, [b["loss"] for b in r["buckets"]], yerr=[b["stderr"] for b in r["buckets"]],
                    marker="o", ms=4, capsize=2, label=policy)
        ax2.plot(xs, [min(b["ratio_to_in_window"], 1.3) for b in r["buckets"]], marker="o", ms=4,
                 label=policy)
    ax.axhline(out["in_window_loss"], color="gray", ls=":", label="in-window (stories alone)")
    ax2.axhline(1.1, color="gray", ls=":", label="+10%")
    trained = out["trained_context_actual"]
    for a in (ax, ax2):
        a.axvline(trained, color="k", ls="--", lw=0.8)
        a.grid(alpha=0.3, which="both")
    ax.text(trained * 1.05, 0.05, "trained length %d" % trained, fontsize=8,
            transform=ax.get_xaxis_transform())
    ax.set_xscale("log", base=2)
    ticks = [2 ** k for k in range(0, 20) if 2 ** k <= out["documents"]["length"]]
    ax2.set_xticks(ticks, [fmt_pos(t) for t in ticks], fontsize=7)
    ax2.set_xlabel("position in document (tokens; log-spaced buckets)")
    ax.set_ylabel("loss (nats / token)")
    ax2.set_ylabel("loss / in-window loss\n(same tokens)")
    ax.set_ylim(bottom=0)
    # Keep the flat curves readable: ratios above the top are drawn at it, labelled.
    top = 1.3
    ax2.set_ylim(0.95, top)
    for policy, r in out["policies"].items():
        off = [b for b in r["buckets"] if b["ratio_to_in_window"] > top]
        if off:
            worst = max(b["ratio_to_in_window"] for b in off)
            ax2.annotate("%s: up to %.2fx (off scale)" % (policy, worst),
                         xy=(math.sqrt(off[0]["lo"] * off[0]["hi"]), top), xytext=(0, -12),
                         textcoords="offset points", fontsize=8, ha="right")
    ax.set_title("%s: loss by position (%d-token documents), atten_length %d, chunk %d" % (
        out["model"], out["documents"]["length"], out["long_context"]["atten_length"],
        out["long_context"]["chunk_size"]), fontsize=10)
    ax.legend(fontsize=8)
    ax2.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
