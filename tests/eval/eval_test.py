#!/usr/bin/python3
"""Small versions of the evaluation tools (tools/eval/) against the real
headroom-server, so regressions in long-context retrieval and loss are caught.

  passkey   tools/eval/passkey_eval.py on models/demo.gguf (or --model, a
            path under the source tree, e.g. models/seqpe_demo): a few cells
            (lengths 1K and 4K, key depths 0/50/100 %, 2 trials, longheads);
            asserts retrieval. Exits 77 (ctest: skipped) only when the model
            does not exist yet.
  loss      tools/eval/loss_eval.py on stories260K (trained at 512 tokens;
            atten_length 512, chunk_size 64): one 4K-token document of the
            model's own stories under longheads; asserts finite numbers and a
            flat curve (the last bucket's loss within 10% of the in-window loss
            of the same tokens).

usage: eval_test.py passkey|loss --source DIR --server_binary PATH [--shared DIR] [--model PATH]
($HEADROOM_SHARED_DIR overrides --shared.)
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

SKIP = 77


def run_tool(cmd):
    t0 = time.time()
    print("+ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd)
    print("(%.1f s)" % (time.time() - t0), flush=True)
    if r.returncode != 0:
        sys.exit("FAIL: the tool exited %d" % r.returncode)


def passkey(args, tmp):
    model = os.path.join(args.source, args.model)
    if not os.path.exists(model):
        print("SKIPPED: %s does not exist yet (tools/demo_model/train.py or train_seqpe.py "
              "writes it)" % model)
        return SKIP
    run_tool([sys.executable, os.path.join(args.source, "tools", "eval", "passkey_eval.py"),
              "--server_binary", args.server_binary, "--model", model,
              "--lengths", "1K,4K", "--depths", "0,50,100", "--trials", "2",
              "--policies", "longheads:bound", "--out_dir", tmp, "--name", "passkey_test"]
             + args.extra)
    with open(os.path.join(tmp, "passkey_test.json")) as f:
        out = json.load(f)
    cells = out["cells"]
    assert len(cells) == 6, cells
    bad = []
    for c in cells:
        print("%s %d depth %g: %s" % (c["policy"], c["length"], c["depth"],
                                      "%d/%d" % (c["correct"], c["trials"]) if c["status"] == "run"
                                      else "not run: " + c.get("reason", "")))
        if c["status"] != "run":
            bad.append("cell %s/%g not run" % (c["length"], c["depth"]))
        elif c["correct"] < c["trials"] - 1 or c["correct"] == 0:
            bad.append("cell %d/%g: %d/%d, e.g. %s" % (c["length"], c["depth"], c["correct"],
                                                      c["trials"], c["failures"][:1]))
        elif abs(c["prompt_tokens_mean"] - c["length"]) > c["length"] * 0.01:
            bad.append("cell %d/%g: prompts of %.0f tokens" % (c["length"], c["depth"],
                                                              c["prompt_tokens_mean"]))
    correct = sum(c.get("correct", 0) for c in cells)
    trials = sum(c["trials"] for c in cells)
    if correct < trials - 1:
        bad.append("%d/%d correct overall (at most one miss allowed)" % (correct, trials))
    for f in ["passkey_test.md", "passkey_test_longheads_bound.png"]:
        if not os.path.getsize(os.path.join(tmp, f)):
            bad.append("empty " + f)
    if bad:
        sys.exit("FAIL:\n  " + "\n  ".join(bad))
    print("OK: %d/%d keys retrieved" % (correct, trials))
    return 0


def loss(args, tmp):
    model = os.path.join(args.shared, "models", "stories260K.gguf")
    run_tool([sys.executable, os.path.join(args.source, "tools", "eval", "loss_eval.py"),
              "--server_binary", args.server_binary, "--model", model,
              "--length", "4096", "--docs", "1", "--policies", "longheads:bound",
              "--atten_length", "512", "--chunk_size", "64", "--out_dir", tmp, "--name", "loss_test"]
             + args.extra)
    with open(os.path.join(tmp, "loss_test.json")) as f:
        out = json.load(f)
    bad = []
    inw = out["in_window_loss"]
    buckets = out["policies"]["longheads:bound"]["buckets"]
    for b in buckets:
        print("[%d, %d): loss %.4f, ratio %.3f" % (b["lo"], b["hi"], b["loss"], b["ratio_to_in_window"]))
        for k in ("loss", "stderr", "ratio_to_in_window", "in_window_loss_same_tokens"):
            if not math.isfinite(b[k]) or b[k] < 0:
                bad.append("bucket [%d, %d) %s = %r" % (b["lo"], b["hi"], k, b[k]))
    if not (math.isfinite(inw) and 0.3 < inw < 5):
        bad.append("in-window loss %r" % inw)
    if buckets[-1]["hi"] != 4096 or buckets[-1]["lo"] != 2048:
        bad.append("last bucket [%d, %d)" % (buckets[-1]["lo"], buckets[-1]["hi"]))
    # Inside the window every policy is plain attention: the first story is
    # scored exactly as alone.
    if abs(buckets[0]["ratio_to_in_window"] - 1) > 1e-3:
        bad.append("first bucket ratio %.4f != 1" % buckets[0]["ratio_to_in_window"])
    if buckets[-1]["ratio_to_in_window"] > 1.10:
        bad.append("longheads loss at [2K, 4K) is %.3fx the in-window loss (> 1.10)"
                   % buckets[-1]["ratio_to_in_window"])
    if not os.path.getsize(os.path.join(tmp, "loss_test.png")):
        bad.append("empty png")
    if bad:
        sys.exit("FAIL:\n  " + "\n  ".join(bad))
    print("OK: longheads loss at [2K, 4K) = %.3fx in-window" % buckets[-1]["ratio_to_in_window"])
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["passkey", "loss"])
    p.add_argument("--source", required=True)
    p.add_argument("--server_binary", required=True)
    p.add_argument("--shared", default="")
    p.add_argument("--model", default="models/demo.gguf",
                   help="passkey: the model, relative to --source")
    args, extra = p.parse_known_args()
    args.extra = extra  # more tool flags (e.g. --atten_length for the demo model)
    args.shared = os.environ.get("HEADROOM_SHARED_DIR") or args.shared or os.path.join(
        args.source, "..", "shared")
    with tempfile.TemporaryDirectory() as tmp:
        return passkey(args, tmp) if args.which == "passkey" else loss(args, tmp)


if __name__ == "__main__":
    sys.exit(main())
