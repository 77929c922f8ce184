"""Synthetic long documents for the demo model: grammar filler, a hidden
5-digit pass key at a chosen depth, and the question at the end.

Importable by evaluation tools:

    from data import DocumentGenerator
    gen = DocumentGenerator()
    doc = gen.document(n_tokens=16384, depth=0.25, seed=7)
    doc.prompt      # text to send (the server adds BOS)
    doc.key         # "71432", the expected answer
    doc.n_tokens    # prompt tokens including BOS (== n_tokens unless n_tokens is tiny)

Everything is a pure function of the seed (Python's random.Random), so the
same call gives the same document on every machine.
"""

import random

import words
from tokenizer import BOS, EOS, Tokenizer


class Document:
    def __init__(self, prompt, key, ids, key_token_start, answer_ids):
        self.prompt = prompt                    # text, without BOS
        self.key = key                          # the 5 digits
        self.ids = ids                          # BOS + prompt tokens
        self.n_tokens = len(ids)
        self.key_token_start = key_token_start  # index in ids of the key sentence
        self.answer_ids = answer_ids            # " 71432." + EOS


class DocumentGenerator:
    """Sentences from words.TEMPLATES; a per-document "style" (a random subset of
    every word list and of the templates) varies the filler between documents."""

    def __init__(self, tokenizer=None):
        self.tok = tokenizer or Tokenizer()
        self.answer_prefix = words.QUESTION

    # -------------------------------------------------------------- filler
    def style(self, rng):
        def subset(lst, lo=0.3):
            k = rng.randint(max(2, int(len(lst) * lo)), len(lst))
            return rng.sample(lst, k)
        slots = {name: subset(lst) for name, lst in words.SLOTS.items()}
        templates = subset(words.TEMPLATES, 0.4)
        return slots, templates

    def sentence(self, rng, style):
        slots, templates = style
        template = rng.choice(templates)
        out, i = [], 0
        while i < len(template):
            ch = template[i]
            if ch == "{":
                j = template.index("}", i)
                out.append(rng.choice(slots[template[i + 1:j]]))
                i = j + 1
            else:
                out.append(ch)
                i += 1
        return "".join(out)

    def filler(self, rng, style, n_tokens):
        """Sentences whose tokens sum to n_tokens (exactly when n_tokens >= 2;
        sentences are at least 2 tokens, so a remainder of 1 is left unused)."""
        sents, total = [], 0
        while n_tokens - total >= 2:
            remaining = n_tokens - total
            for _ in range(50):
                s = self.sentence(rng, style)
                k = len(self.tok.encode_sentence(s))
                if k <= remaining and remaining - k != 1:
                    break
            else:  # the style has no sentence that short: use any template
                for _ in range(200):
                    s = self.sentence(rng, (words.SLOTS, words.TEMPLATES))
                    k = len(self.tok.encode_sentence(s))
                    if k <= remaining and remaining - k != 1:
                        break
                else:
                    break
            sents.append(s)
            total += k
        return sents, total

    # ------------------------------------------------------------ documents
    @staticmethod
    def random_key(rng):
        return "".join(rng.choice("0123456789") for _ in range(5))

    def document(self, n_tokens, depth, seed=None, rng=None, key=None):
        """A prompt of n_tokens tokens (BOS included) whose pass-key sentence
        starts after a fraction `depth` (0..1) of the filler, followed by the
        question. Pass `seed` (any int) or an `rng` (random.Random)."""
        if rng is None:
            rng = random.Random(seed)
        key = key or self.random_key(rng)
        style = self.style(rng)
        key_sent = words.KEY_TEMPLATE.format(key=key)
        key_ids = self.tok.encode_sentence(key_sent)
        q_ids = self.tok.encode_sentence(words.QUESTION)
        n_filler = max(0, n_tokens - 1 - len(key_ids) - len(q_ids))
        n_before = int(round(depth * n_filler))
        before, nb = self.filler(rng, style, n_before)
        after, na = self.filler(rng, style, n_filler - nb)
        sents = before + [key_sent] + after + [words.QUESTION]
        ids = [BOS]
        for s in sents:
            ids += self.tok.encode_sentence(s)
        answer_ids = self.tok.encode_sentence(key + ".")
        answer_ids = answer_ids + [EOS]
        return Document(" ".join(sents), key, ids, 1 + nb, answer_ids)

    # ------------------------------------------------------------ training
    def training_sequence(self, rng, seq_len, chunk_choices=(16, 32, 64), p_short=0.2,
                          p_splice=0.3):
        """One training example of at most seq_len + 1 tokens (inputs are
        [:-1], targets [1:]): BOS, document, question, answer, EOS. Returns
        (ids, n_answer_digits_start): the answer's first digit index in ids.

        Kinds: plain documents of the full length (the key at a uniform
        depth), shorter plain documents (p_short), and "spliced" views
        (p_splice) that look like what LongHeads attention shows a query
        of a much longer document: chunk 0, a few chunks from anywhere
        (always those of the key sentence), the previous and own chunks,
        joined at chunk boundaries."""
        answer_len = 7  # "▁" + 5 digits + "." (+ EOS below)
        u = rng.random()
        chunk_choices = [w for w in chunk_choices if (seq_len + 1) // w >= 6]
        if u < p_splice and chunk_choices:
            return self._spliced(rng, seq_len, rng.choice(chunk_choices))
        n_prompt = seq_len + 1 - (answer_len + 1)
        if u < p_splice + p_short:
            n_prompt = rng.randint(24, n_prompt)
        doc = self.document(n_prompt, rng.random(), rng=rng)
        ids = doc.ids + doc.answer_ids
        return ids, len(doc.ids) + 1

    def _spliced(self, rng, seq_len, w):
        k = (seq_len + 1) // w  # slots of w tokens
        n_virtual = rng.randint(2 * k, 16 * k) * w
        doc = self.document(n_virtual, rng.random(), rng=rng)
        ids = doc.ids + doc.answer_ids
        # The view of the answer's last digit (the last query that matters).
        q_pos = len(doc.ids) + 5
        c = q_pos // w
        n_chunks = c + 1
        key_chunks = set(range(doc.key_token_start // w,
                               (doc.key_token_start + 14) // w + 1))
        middle = [j for j in range(1, c - 1)]
        chosen = {j for j in key_chunks if 1 <= j <= c - 2}
        others = [j for j in middle if j not in chosen]
        n_free = max(0, k - 3 - len(chosen))
        chosen.update(rng.sample(others, min(n_free, len(others))))
        chunks = [0] + sorted(chosen) + [c - 1, c]
        out = []
        for j in chunks:
            out += ids[j * w:(j + 1) * w]
        # Cut after the answer (EOS included): the own chunk is partial.
        end = len(out) - (min(len(ids), (c + 1) * w) - len(ids))
        out = out[:end]
        assert out[-len(doc.answer_ids):] == doc.answer_ids
        assert len(out) <= seq_len + 1, (len(out), seq_len)
        del n_chunks
        return out, len(out) - len(doc.answer_ids) + 1


if __name__ == "__main__":
    gen = DocumentGenerator()
    d = gen.document(200, 0.5, seed=1)
    print(d.n_tokens, d.key, d.key_token_start)
    print(d.prompt)
    rng = random.Random(0)
    for _ in range(6):
        ids, a = gen.training_sequence(rng, 512)
        print(len(ids), a, repr(gen.tok.decode(ids[a - 1:])), repr(gen.tok.decode(ids[:40])))
    import time
    t = time.time()
    for _ in range(200):
        gen.training_sequence(rng, 512)
    print("%.2f ms per sequence" % ((time.time() - t) * 1000 / 200))
    t = time.time()
    d = gen.document(131072, 0.3, seed=5)
    print(d.n_tokens, "tokens for a 128K document in %.1f s" % (time.time() - t), len(d.prompt), "chars")
