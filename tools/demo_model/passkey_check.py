#!/usr/bin/python3
"""Pass-key retrieval through headroom-generate (greedy), a quick check of the
demo model; the full evaluation grid is a separate tool.

    tools/demo_model/passkey_check.py --lengths 256,512 --depths 0,0.25,0.5,0.75,1 \
        --trials 4 --policy full
    tools/demo_model/passkey_check.py --lengths 4096,16384 --policy longheads \
        --atten_length 512 --chunk_size 64 --summary bound

Prints one line per (length, depth) cell and the overall accuracy. A trial
passes when the first five generated digits equal the key.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from data import DocumentGenerator  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=os.path.join(REPO, "build/server/headroom-generate"))
    p.add_argument("--model", default=os.path.join(REPO, "models/demo.gguf"))
    p.add_argument("--lengths", default="512")
    p.add_argument("--depths", default="0,0.25,0.5,0.75,1")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--policy", default="longheads")
    p.add_argument("--extra", default="", help="more headroom-generate flags")
    p.add_argument("--atten_length", type=int, default=0)
    p.add_argument("--chunk_size", type=int, default=0)
    p.add_argument("--summary", default="bound")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    tok = Tokenizer()
    gen = DocumentGenerator(tok)
    lengths = [int(x) for x in args.lengths.split(",")]
    depths = [float(x) for x in args.depths.split(",")]
    total = ok_total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in lengths:
            for d in depths:
                ok = 0
                t0 = time.time()
                for t in range(args.trials):
                    doc = gen.document(n, d, seed=args.seed * 1_000_000 + n * 1000 + int(d * 100) * 10 + t)
                    path = os.path.join(tmp, "prompt.txt")
                    with open(path, "w") as f:
                        f.write(doc.prompt)
                    cmd = [args.binary, "--model", args.model, "--prompt_file", path,
                           "--max_tokens", "8", "--print_ids", "--policy", args.policy,
                           "--summary", args.summary]
                    if args.atten_length:
                        cmd += ["--atten_length", str(args.atten_length)]
                    if args.chunk_size:
                        cmd += ["--chunk_size", str(args.chunk_size)]
                    cmd += args.extra.split()
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode != 0:
                        sys.exit("headroom-generate failed: " + r.stderr[-2000:])
                    ids = [int(x) for x in r.stderr.strip().split("\n")[-1].split()]
                    out = tok.decode(ids)
                    got = "".join(re.findall(r"\d", out))[:5]
                    ok += got == doc.key
                    if args.verbose:
                        print(f"  n={n} depth={d} key={doc.key} out={out!r}", flush=True)
                total += args.trials
                ok_total += ok
                print(f"{args.policy} n={n} depth={d:.2f}: {ok}/{args.trials} "
                      f"({time.time() - t0:.1f} s)", flush=True)
    print(f"overall {ok_total}/{total} = {ok_total / total:.3f}")


if __name__ == "__main__":
    main()
