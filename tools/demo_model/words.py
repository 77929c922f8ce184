"""Word lists and sentence templates of the demo model's synthetic filler text.

The filler is readable English from a small grammar. It never contains
digits, nor the words of the pass-key sentence and question ("pass", "key",
"Remember", "What"), so the hidden key is the only thing of its kind in a
document.
"""

NAMES = [
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Grace", "Hugo", "Iris", "Jonas",
    "Karen", "Leo", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tina", "Victor",
    "Wendy", "Yusuf", "Zoe", "Omar", "Lena", "Marco", "Nina", "Oscar", "Ruth", "Tom",
]

NOUNS = [
    "dog", "cat", "bird", "horse", "fox", "rabbit", "farmer", "teacher", "doctor", "child",
    "baker", "sailor", "painter", "king", "queen", "boy", "girl", "man", "woman", "friend",
    "tree", "flower", "river", "stone", "book", "letter", "song", "story", "boat", "train",
    "car", "house", "garden", "window", "door", "table", "chair", "lamp", "cup", "bottle",
    "apple", "bread", "cake", "soup", "coat", "hat", "shoe", "bag", "box", "ball",
    "kite", "clock", "map", "road", "bridge", "hill", "cloud", "storm", "wind", "star",
    "moon", "sun", "fish", "duck", "goat", "sheep", "owl", "mouse", "wolf", "bear",
    "candle", "ship", "wagon", "basket", "ribbon", "drum", "piano", "violin", "picture", "mirror",
]

ADJECTIVES = [
    "big", "small", "old", "young", "red", "blue", "green", "yellow", "brown", "white",
    "black", "quiet", "loud", "happy", "sad", "brave", "shy", "clever", "lazy", "busy",
    "tall", "short", "warm", "cold", "bright", "dark", "soft", "hard", "heavy", "light",
    "new", "tired", "hungry", "gentle", "angry", "calm", "strange", "famous", "tiny", "huge",
    "friendly", "careful", "wild", "sleepy", "round", "golden", "silver", "kind", "proud", "funny",
]

# Transitive verbs in the past tense.
TVERBS = [
    "saw", "found", "liked", "painted", "carried", "opened", "closed", "washed", "pushed", "pulled",
    "watched", "followed", "helped", "visited", "fixed", "cleaned", "moved", "dropped", "lifted", "bought",
    "sold", "made", "took", "brought", "held", "touched", "chased", "called", "met", "forgot",
    "loved", "hid", "shared", "counted", "cooked", "drew", "kicked", "caught", "read", "heard",
]

# Intransitive verbs in the past tense.
IVERBS = [
    "slept", "laughed", "smiled", "walked", "ran", "jumped", "sang", "danced", "waited", "rested",
    "cried", "played", "swam", "worked", "listened", "shouted", "whispered", "wandered", "sat", "stood",
    "arrived", "left", "stayed", "fell", "flew",
]

PLACES = [
    "park", "forest", "village", "city", "market", "school", "kitchen", "library", "harbor", "field",
    "castle", "valley", "beach", "lake", "mountain", "station", "bakery", "farm", "square", "meadow",
    "island", "desert", "museum", "garden", "cave", "tower", "barn", "street", "shop", "church",
]

ADVERBS = [
    "slowly", "quickly", "happily", "quietly", "loudly", "softly", "gladly", "often", "rarely", "again",
    "together", "alone", "early", "late", "suddenly", "carefully", "gently", "proudly", "calmly", "eagerly",
]

PREPOSITIONS = ["in", "near", "behind", "under", "across", "beside", "inside", "outside", "around", "through"]

TIMES = ["morning", "evening", "night", "day", "week", "summer", "winter", "spring", "autumn", "year"]

COLORS = ["red", "blue", "green", "yellow", "brown", "white", "black", "golden", "silver", "grey"]

WEATHER = ["rained", "snowed", "was windy", "was sunny", "was foggy", "was cold", "was warm", "was quiet"]

# Sentence templates. Slots: {N} name, {n} noun, {a} adjective, {t} transitive
# verb, {i} intransitive verb, {p} place, {d} adverb, {r} preposition,
# {T} time word, {c} colour, {w} weather phrase. A capitalised slot word at the
# start of a sentence comes from the template text itself.
TEMPLATES = [
    "The {a} {n} {t} the {n}.",
    "The {n} {t} a {a} {n} {r} the {p}.",
    "{N} {t} the {a} {n}.",
    "{N} {i} {d} {r} the {p}.",
    "{N} and {N} {i} near the {p}.",
    "In the {p}, the {n} {i} {d}.",
    "Every {T}, {N} {t} the {n}.",
    "The {n} was {a} and {a}.",
    "A {a} {n} {i} {r} the {p}.",
    "Then {N} {t} a {c} {n}.",
    "Later the {a} {n} {i}.",
    "It {w} in the {p} that {T}.",
    "{N} {i}.",
    "The {n} {i}.",
    "It was {a}.",
    "{N} said that the {n} was {a}.",
    "There was a {a} {n} in the {p}.",
    "One {T}, the {n} {i} {d}.",
    "The {c} {n} {r} the {p} was {a}.",
    "{N} {t} the {n} and the {n}.",
    "Nobody {t} the {a} {n}.",
    "Yesterday {N} {i} {d}.",
    "After that, {N} {t} a {n} {r} the {p}.",
    "The {n} of {N} was {a}.",
    "Yes.",
]

SLOTS = {
    "N": NAMES, "n": NOUNS, "a": ADJECTIVES, "t": TVERBS, "i": IVERBS, "p": PLACES,
    "d": ADVERBS, "r": PREPOSITIONS, "T": TIMES, "c": COLORS, "w": WEATHER,
}

# The pass-key sentence and the question (the task's fixed wording).
KEY_TEMPLATE = "The pass key is {key}. Remember it."
QUESTION = "What is the pass key? The pass key is"


def vocabulary_words():
    """Every word the grammar, the key sentence and the question can produce,
    as it appears after a space (sentence-initial words keep their capital)."""
    words = set()
    for lst in (NAMES, NOUNS, ADJECTIVES, TVERBS, IVERBS, PLACES, ADVERBS, PREPOSITIONS, TIMES,
                COLORS):
        words.update(lst)
    for phrase in WEATHER:
        words.update(phrase.split())
    for text in TEMPLATES + [KEY_TEMPLATE, QUESTION]:
        for tok in text.split():
            tok = tok.strip(".,?")
            if tok and "{" not in tok:
                words.add(tok)
    return sorted(words)
