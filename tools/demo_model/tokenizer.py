"""The demo model's tokenizer: a LLaMA SentencePiece-style vocabulary (GGUF
`tokenizer.ggml.model = "llama"`) built from the filler grammar's words.

Vocabulary (ids in this order):
  0 <unk>, 1 <s> (BOS), 2 </s> (EOS)                     control / unknown
  3 .. 258   <0x00> .. <0xFF>                             byte fallback
  "▁" and the printable ASCII characters (digits included) single characters
  "▁w", "▁wo", ..., "▁word" for every grammar word        word pieces
Only pieces that start with "▁" are longer than one character, and every
prefix of such a piece is a piece too, so the SPM merges build each word left
to right from its "▁" and never join two words, a word and punctuation, or
two digits: every digit is one token, every grammar word one token, and any
other text falls back to characters and bytes.

`encode` is llama.cpp's llm_tokenizer_spm (and server/model/gguf_tokenizer.cc)
step for step: space -> "▁", a "▁" dummy prefix, highest-score leftmost merge
first, byte fallback. `tools/demo_model/check_tokenizer.sh` compares it with
the server's tokenizer on the exported GGUF.
"""

import heapq

from words import vocabulary_words

SPACE = "\u2581"
UNK, BOS, EOS = 0, 1, 2

# GGUF / llama.cpp token types.
TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_BYTE = 1, 2, 3, 6


class Tokenizer:
    def __init__(self):
        pieces = ["<unk>", "<s>", "</s>"]
        types = [TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL]
        for b in range(256):
            pieces.append("<0x%02X>" % b)
            types.append(TYPE_BYTE)
        singles = [SPACE] + [chr(c) for c in range(33, 127)]
        for s in singles:
            pieces.append(s)
            types.append(TYPE_NORMAL)
        seen = set(pieces)
        for word in vocabulary_words():
            for end in range(1, len(word) + 1):
                p = SPACE + word[:end]
                if p not in seen:
                    seen.add(p)
                    pieces.append(p)
                    types.append(TYPE_NORMAL)
        self.pieces = pieces
        self.types = types
        # Scores only order merges; longer pieces score higher (all merges are
        # independent word by word, so any order gives the same result).
        self.scores = [0.0 if t != TYPE_NORMAL else -1000.0 + len(p) for p, t in zip(pieces, types)]
        self.piece_to_id = {p: i for i, p in enumerate(pieces)}
        self.byte_to_id = [self.piece_to_id["<0x%02X>" % b] for b in range(256)]
        self.digit_ids = [self.piece_to_id[str(d)] for d in range(10)]
        self.space_id = self.piece_to_id[SPACE]
        self._cache = {}

    @property
    def vocab_size(self):
        return len(self.pieces)

    def encode(self, text, add_bos=False):
        ids = [BOS] if add_bos else []
        if not text:
            return ids
        return ids + self._tokenize(SPACE + text.replace(" ", SPACE))

    def encode_sentence(self, sentence):
        """Tokens of " " + sentence inside a longer text (cached): merges never
        cross a space, so a document's tokens are its sentences' tokens."""
        ids = self._cache.get(sentence)
        if ids is None:
            ids = self._tokenize(SPACE + sentence.replace(" ", SPACE))
            self._cache[sentence] = ids
        return ids

    def _tokenize(self, text):
        # Symbols are characters; a doubly linked list of (start, size).
        n = len(text)
        start = list(range(n))
        size = [1] * n
        prev = [i - 1 for i in range(n)]
        nxt = [i + 1 if i + 1 < n else -1 for i in range(n)]
        heap = []

        def try_add(left, right):
            if left < 0 or right < 0:
                return
            piece = text[start[left]:start[left] + size[left] + size[right]]
            pid = self.piece_to_id.get(piece)
            if pid is None:
                return
            # Highest score first, then leftmost.
            heapq.heappush(heap, (-self.scores[pid], left, right, size[left] + size[right]))

        for i in range(1, n):
            try_add(i - 1, i)
        while heap:
            _, left, right, sz = heapq.heappop(heap)
            if size[left] == 0 or size[right] == 0 or size[left] + size[right] != sz:
                continue
            size[left] += size[right]
            size[right] = 0
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            try_add(prev[left], left)
            try_add(left, nxt[left])
        out = []
        i = 0 if n else -1
        while i != -1:
            piece = text[start[i]:start[i] + size[i]]
            pid = self.piece_to_id.get(piece)
            if pid is not None:
                out.append(pid)
            else:
                out.extend(self.byte_to_id[b] for b in piece.encode("utf-8"))
            i = nxt[i]
        return out

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.types[i]
            p = self.pieces[i]
            if t == TYPE_BYTE:
                out.append(int(p[3:5], 16))
            elif t == TYPE_NORMAL:
                out += p.replace(SPACE, " ").encode("utf-8")
        return out.decode("utf-8", errors="replace")


if __name__ == "__main__":
    import sys
    tok = Tokenizer()
    text = " ".join(sys.argv[1:]) or "The pass key is 71432. Remember it. What is the pass key?"
    ids = tok.encode(text, add_bos=True)
    print(tok.vocab_size, ids)
    print([tok.pieces[i] for i in ids])
    assert tok.decode(ids[1:]) == " " + text, tok.decode(ids[1:])
