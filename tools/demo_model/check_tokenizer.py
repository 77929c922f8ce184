#!/usr/bin/python3
"""Checks that tokenizer.py encodes exactly as the server's GGUF tokenizer.

    tools/demo_model/check_tokenizer.sh [MODEL.gguf]   (builds the C++ side)

Feeds generated documents, key sentences, questions and odd text (unknown
words, non-ASCII, digits, repeated spaces, punctuation) through both and
compares every id. Exit status 1 on any difference.
"""

import random
import subprocess
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import DocumentGenerator  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402


def texts():
    gen = DocumentGenerator()
    rng = random.Random(5)
    out = []
    for i in range(40):
        out.append(gen.document(rng.randint(20, 600), rng.random(), seed=i).prompt)
    out += [
        "The pass key is 71432. Remember it.",
        "What is the pass key? The pass key is",
        " 00000 12345 99999.",
        "the  double  spaces   and trailing ",
        "Zoë, the naïve café owner — 東京 — said “hi” 🙂.",
        "Thermodynamics of pythons: 3.14159 < 22/7!",
        "Theater thereafter, kingdom kingfisher, Anna's annals.",
        "tab\there and ~`@#$%^&*()_+{}|[]\\;':\",./<>?",
        "x",
        " ",
    ]
    rng2 = random.Random(9)
    alphabet = "abcdefghijklmnopqrstuvwxyzTHEWApk 0123456789.,?é"
    for _ in range(200):
        out.append("".join(rng2.choice(alphabet) for _ in range(rng2.randint(1, 40))))
    return out


def main():
    binary, model = sys.argv[1], sys.argv[2]
    tok = Tokenizer()
    lines = texts()
    res = subprocess.run([binary, model], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True)
    got = res.stdout.split("\n")
    bad = 0
    n_tokens = 0
    for text, line in zip(lines, got):
        want = tok.encode(text)
        have = [int(t) for t in line.split()]
        n_tokens += len(want)
        if want != have:
            bad += 1
            if bad <= 5:
                print("MISMATCH", repr(text[:80]), want[:20], have[:20])
        # Decoding round-trips (the server prints the same bytes).
        if tok.decode(want) != " " + text and text:
            bad += 1
            print("DECODE MISMATCH", repr(text[:80]))
    print(f"{len(lines)} texts, {n_tokens} tokens: {'OK' if bad == 0 else f'{bad} mismatches'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
