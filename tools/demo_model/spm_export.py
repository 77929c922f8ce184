#!/usr/bin/python3
"""Writes the demo tokenizer (tokenizer.py) as a SentencePiece `tokenizer.model`
(a serialized sentencepiece.ModelProto, BPE), for model directories that do
not embed their vocabulary the way GGUF does (the SeqPE demo model).

    /usr/bin/python3 tools/demo_model/spm_export.py OUT/tokenizer.model [--check]

The pieces, scores and types are exactly those export_gguf.py embeds in
models/demo.gguf (tokenizer.ggml.*): same ids, so either file gives the same
tokens. The server reads this file with LoadSentencePieceTokenizer
(server/model/sentencepiece_model.h: BPE only; fields read: pieces, trainer_spec
model_type / unk / bos / eos ids, normalizer_spec add_dummy_prefix). The other
fields written (byte_fallback, identity normalizer, no whitespace collapsing)
make the SentencePiece library itself tokenize like llama.cpp's SPM, so
`--check` can compare the library with tokenizer.py when python3-sentencepiece
is installed.
"""

import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tokenizer import BOS, EOS, UNK, Tokenizer  # noqa: E402


def _varint(n):
    n &= (1 << 64) - 1  # negative int32 values are 10-byte varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field, wire):
    return _varint((field << 3) | wire)


def _bytes(field, data):
    return _key(field, 2) + _varint(len(data)) + data


def _int(field, value):
    return _key(field, 0) + _varint(int(value))


def _float(field, value):
    return _key(field, 5) + struct.pack("<f", value)


def model_proto(tok):
    out = bytearray()
    for piece, score, typ in zip(tok.pieces, tok.scores, tok.types):
        sp = _bytes(1, piece.encode("utf-8")) + _float(2, score) + _int(3, typ)
        out += _bytes(1, sp)
    trainer = (_int(3, 2)            # model_type BPE
               + _int(4, tok.vocab_size)
               + _int(35, 1)         # byte_fallback
               + _int(40, UNK) + _int(41, BOS) + _int(42, EOS) + _int(43, -1))
    normalizer = (_bytes(1, b"identity")
                  + _int(3, 1)       # add_dummy_prefix
                  + _int(4, 0)       # remove_extra_whitespaces: off (llama.cpp does not collapse)
                  + _int(5, 1))      # escape_whitespaces
    out += _bytes(2, trainer)
    out += _bytes(3, normalizer)
    return bytes(out)


def write(path, tok=None):
    tok = tok or Tokenizer()
    data = model_proto(tok)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def check(path, n_docs=20):
    """Compares the SentencePiece library on `path` with tokenizer.py.
    Returns (n_texts, n_tokens) or None when the library is missing."""
    try:
        import sentencepiece as spm
    except ImportError:
        return None
    from data import DocumentGenerator
    tok = Tokenizer()
    sp = spm.SentencePieceProcessor(model_file=path)
    assert sp.get_piece_size() == tok.vocab_size, (sp.get_piece_size(), tok.vocab_size)
    gen = DocumentGenerator(tok)
    rng = random.Random(5)
    texts = [gen.document(rng.randint(20, 300), rng.random(), rng=rng).prompt for _ in range(n_docs)]
    texts += ["The pass key is 71432. Remember it.", "unknown wordz  with  spaces",
              "caf\u00e9 \u00fcber na\u00efve \u2014 \U0001F600", "x", " leading", "trailing "]
    n_tok = 0
    for t in texts:
        want = tok.encode(t)
        got = sp.encode(t)
        assert got == want, (t, got[:20], want[:20])
        n_tok += len(want)
    return len(texts), n_tok


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    n = write(sys.argv[1])
    print("wrote %s (%d bytes)" % (sys.argv[1], n))
    if "--check" in sys.argv[2:]:
        r = check(sys.argv[1])
        print("sentencepiece library not installed: not checked" if r is None else
              "sentencepiece library == tokenizer.py on %d texts, %d tokens" % r)


if __name__ == "__main__":
    main()
