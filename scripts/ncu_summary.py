#!/usr/bin/env python3
"""Kernel time per Forward call from an ncu CSV (scripts/gpu-check.sh run).

    scripts/ncu_summary.py OUT/ncu_prefill.csv [--calls 1,3]

ncu's `--csv --metrics gpu__time_duration.sum` output has one row per kernel
launch. A Forward call starts with the embedding kernel, so the launches are
cut into calls there (cuda_model_bench: one warm-up and one timed call per
prefill row: full, longheads, longheads_chunk, ...); each call's kernels are
summed by name, largest first.
"""
import argparse
import collections
import csv
import re


def short(name):
    name = re.sub(r"\(.*", "", name)
    name = re.sub(r"^void ", "", name)
    return name.replace("cuda::<unnamed>::", "").replace("hr::", "")[:70]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--calls", default="", help="comma-separated call indices (default: all)")
    ap.add_argument("--top", type=int, default=14)
    args = ap.parse_args()
    lines = open(args.csv).read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith('"ID"'))
    rows = list(csv.reader(lines[start:]))
    col = {h: i for i, h in enumerate(rows[0])}
    calls = []
    for r in rows[1:]:
        if len(r) != len(rows[0]):
            continue
        name = short(r[col["Kernel Name"]])
        ns = float(r[col["Metric Value"]].replace(",", ""))
        if "EmbeddingKernel" in name:
            calls.append([])
        if calls:
            calls[-1].append((name, ns))
    wanted = [int(x) for x in args.calls.split(",") if x] or range(len(calls))
    for i in wanted:
        if i >= len(calls):
            continue
        total = collections.defaultdict(lambda: [0, 0.0])
        for name, ns in calls[i]:
            total[name][0] += 1
            total[name][1] += ns
        print(f"call {i}: {len(calls[i])} launches, {sum(t for _, t in calls[i]) / 1e6:.2f} ms of GPU time")
        for name, (n, ns) in sorted(total.items(), key=lambda kv: -kv[1][1])[: args.top]:
            print(f"  {ns / 1e6:8.3f} ms {n:5d}  {name}")


if __name__ == "__main__":
    main()
