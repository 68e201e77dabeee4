"""Text normalisation shared by the rules and the classifier: one canonical, lower-case form.

Case, Unicode, zero-width characters, leetspeak, letter runs, spaced or glued letters, contractions,
chat shorthand, misspellings and the disguises people use to get past filters ("s*icide", "k1ll
mys3lf", "s-word", "unalive", "kms", "sh"), so that neither the rules nor the model have to learn them.
"""

from __future__ import annotations

import re
import unicodedata

# -- tables ------------------------------------------------------------------------
_ZERO_WIDTH = re.compile("[\u00ad\u034f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'})
_LEET = {"0": "o", "1": "i", "!": "i", "|": "i", "3": "e", "4": "a", "@": "a", "$": "s", "5": "s", "7": "t"}
_LEET_RE = re.compile(r"(?<=[a-z])[01!|34@$57](?=[a-z])|(?<![\w$@])[$@](?=[a-z]{2})")
_APOSTROPHES = [
    (r"\bcan'?t\b", "can not"), (r"\bcannot\b", "can not"), (r"\bwon't\b", "will not"), (r"\bain'?t\b", "am not"),
    (r"n't\b", " not"), (r"\bi'?ma\b", "i am going to"), (r"\bi'm\b", "i am"), (r"'re\b", " are"), (r"'ve\b", " have"),
    (r"'ll\b", " will"), (r"'d\b", " would"), (r"\b(he|she|it|that|what|there|who|where|here|how)'s\b", r"\1 is"),
    (r"'", ""),
]
# whole words (after apostrophes are gone): contractions typed without them, chat shorthand, misspellings
_WORDS = {
    "im": "i am", "ive": "i have", "dont": "do not", "doesnt": "does not", "didnt": "did not", "dnt": "do not",
    "wont": "will not", "wouldnt": "would not", "shouldnt": "should not", "couldnt": "could not", "isnt": "is not",
    "arent": "are not", "wasnt": "was not", "werent": "were not", "havent": "have not", "hasnt": "has not",
    "hadnt": "had not", "youre": "you are", "theyre": "they are", "hes": "he is", "shes": "she is",
    "thats": "that is", "whats": "what is", "theres": "there is", "wouldve": "would have", "idk": "i do not know",
    "gonna": "going to", "gunna": "going to", "gon": "going to", "finna": "going to", "wanna": "want to",
    "wana": "want to", "gotta": "got to", "tryna": "trying to", "bouta": "about to", "boutta": "about to",
    "imma": "i am going to", "lemme": "let me", "gimme": "give me", "kinda": "kind of", "sorta": "sort of",
    "u": "you", "ur": "your", "r": "are", "y": "why", "rn": "right now", "tn": "tonight", "tonite": "tonight",
    "tmrw": "tomorrow", "tmr": "tomorrow", "tmrrw": "tomorrow", "tomorow": "tomorrow", "tommorow": "tomorrow",
    "tommorrow": "tomorrow", "bc": "because", "cuz": "because", "coz": "because", "cos": "because",
    "bcuz": "because", "becuz": "because", "abt": "about", "bout": "about", "thru": "through", "pls": "please",
    "plz": "please", "ppl": "people", "ngl": "not going to lie", "tbh": "to be honest", "fr": "for real",
    "bf": "boyfriend", "gf": "girlfriend", "mum": "mom", "neighbour": "neighbor", "neighbours": "neighbors",
    "wat": "what", "wut": "what", "wnat": "want", "wamt": "want", "wnt": "want", "jus": "just", "alot": "a lot",
    "cud": "could", "wud": "would", "shud": "should", "noone": "no one", "evryone": "everyone", "lyf": "life",
    "kms": "kill myself", "kys": "kill yourself", "ctb": "kill myself", "sh": "self harm", "selfharm": "self harm",
    "od": "overdose", "oding": "overdosing", "kil": "kill", "kll": "kill", "kiil": "kill",
    "killin": "killing", "cutt": "cut", "cuttin": "cutting", "diee": "die", "ded": "dead", "nomore": "anymore",
    "anymoe": "anymore", "myslef": "myself", "mysefl": "myself", "mysef": "myself", "myelf": "myself",
    "mself": "myself", "myselfe": "myself", "mysel": "myself", "myseld": "myself", "msyelf": "myself",
    "meself": "myself", "suicde": "suicide", "sucide": "suicide", "suiside": "suicide", "suicied": "suicide",
    "sucicide": "suicide", "suicid": "suicide", "suicude": "suicide", "suecide": "suicide", "sooicide": "suicide",
    "sewerslide": "suicide", "suicidle": "suicidal", "suicidial": "suicidal", "sucidal": "suicidal",
    "suicdal": "suicidal", "suisidal": "suicidal", "suicidel": "suicidal", "unalive": "die", "unaliving": "dying",
    "unaliveing": "dying",
}
_WORDS_RE = re.compile(r"\b(" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")\b")
_PHRASES = [  # applied in order after the word map
    (r"\b(?:sewer|sue) ?slide\b", "suicide"), (r"\bs word\b", "suicide"), (r"\bun alive\b", "die"),
    (r"\b(?:die|kill) (?=my (?:ex|\w+ ?(?:father|mother|dad|mom|boss|wife|husband))|him\b|her\b|them\b)", "kill "),
    (r"\bkermit suicide\b", "commit suicide"),
    (r"\bunalived? myself\b", "kill myself"), (r"\bdying myself\b", "killing myself"),
    (r"\bdie myself\b", "kill myself"), (r"\bself ?delet(?:e|ing|ed)\b", "kill myself"),
    (r"\b(my|him|her|them|your) self\b", r"\1self"), (r"\bany more\b", "anymore"),
    (r"\bno more(?=\s*(?:$|[.,!?;]))", "anymore"),
    (r"\bill (?=(?:kill|end|just|do|be|never|hurt|jump|take|make|go|probably|die|cut|shoot|stab|murder)\b)", "i will "),
    (r"\bid (?=(?:rather|be|kill|never|love|like|want|just|probably|better|die|have)\b)", "i would "),
    (r"\b(want|going|need|have|ready|about|how|trying|try|got|like|hate|wish) (?:2|too) (?=[a-z])", r"\1 to "),
    (r"\b(die|died|dying)(?= (?:my|her|his|your|their|the|it|them) (?:\w+ )?(?:hair|clothes|shirt|jeans|beard|"
     r"eyebrows|fabric|roots|tips)\b)", "dye"),
]
_PHRASES_RE = [(re.compile(p), r) for p, r in _PHRASES]
# spaced or glued letters ("i w a n t", "killmyself") are re-split with this small lexicon
_LEXICON = {"i", "want", "to", "die", "kill", "my", "myself", "self", "end", "it", "all", "life", "me", "hurt",
            "cut", "am", "going", "suicide", "just", "dead", "be", "jump", "hang", "off", "so", "not", "do"}
_RISK_WORDS = {"die", "kill", "myself", "suicide", "dead", "hurt", "cut", "end", "life", "hang", "jump"}


def _segment(word: str, risky_only: bool) -> str | None:
    """Split `word` into lexicon words (fewest pieces), or None; `risky_only` wants a risk word among them."""
    best: list[list[str] | None] = [[]] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 7), end):
            head, piece = best[start], word[start:end]
            if head is not None and piece in _LEXICON and (best[end] is None or len(head) + 1 < len(best[end])):
                best[end] = [*head, piece]
    pieces = best[-1]
    return " ".join(pieces) if pieces and (not risky_only or _RISK_WORDS & set(pieces)) else None


def _resplit(match: re.Match[str]) -> str:
    joined = match.group(0).replace(" ", "")
    return joined if joined in _SPACED_EXTRA else _segment(joined, risky_only=False) or match.group(0)


def _resplit_glued(match: re.Match[str]) -> str:
    split = _segment(match.group(0), risky_only=True)
    return split if split and " " in split else match.group(0)


# words people disguise to get past filters ("s*icide", "k!ll", "s//cide", "k-i-l-l-i-n-g", "s.h."); first match wins
_DISGUISED = ("suicide", "suicidal", "kill", "killing", "killed", "myself", "self", "selfharm", "harm", "harming",
              "harmed", "die", "dying", "dead", "death", "cut", "cutting", "overdose", "unalive", "unaliving",
              "unaliveing", "hang", "hanging", "kms", "kys", "sh")
_MASKED = re.compile(r"(?<![\w*!@$€#/.\-])(?=[\w*!@$€#/.\-]*[a-z][\w*!@$€#/.\-]*[a-z])(?=[\w*!@$€#/.\-]*[^a-z\s])"
                     r"[a-z0-9*!@$€#/.\-]{2,}[a-z*]")
_SPACED_EXTRA = {"cutting", "harmed", "harming", "kms", "kys", "suicide", "suicidal", "killing", "overdose", "sh"}


def _unmask(match: re.Match[str]) -> str:
    """A token with symbols inside becomes the disguised word it fits, if any: a run of `*` stands for
    letters, `*`/`!` for one or two, a digit or `@$€#` for one, `-./` for zero to two (separators)."""
    token = match.group(0)
    pattern = ""
    for run in re.finditer(r"\*{3,}|[a-z]|[*!]|[0-9@$€#]|[-./]", token):
        piece = run.group(0)
        pattern += (r"[a-z]+" if len(piece) >= 3 else piece if piece.isalpha() else r"[a-z]{1,2}" if piece in "*!"
                    else r"[a-z]" if piece not in "-./" else r"[a-z]{0,2}")
    found = next((word for word in _DISGUISED if re.fullmatch(pattern, word)), None)
    return found if found is not None else token


def normalize(text: str) -> str:
    """Lower-case canonical form that the rules are written against."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)
    text = _ZERO_WIDTH.sub("", text)
    text = re.sub(r"\bsh'?(?:e?d)\b", "self harmed", text)  # "sh'd", before apostrophes become " would"
    text = re.sub(r"\bsh'?ing\b", "self harming", text)
    text = _MASKED.sub(_unmask, text)
    text = _LEET_RE.sub(lambda m: _LEET[m.group(0)], text)
    text = re.sub(r"([a-z])\1{2,}", r"\1", text)  # "diiiie" -> "die", "killlll" -> "kil" (fixed below)
    text = re.sub(r"(?<=[a-z])[-_](?=[a-z])", " ", text)  # "self-harm", "sewer-slide"
    text = re.sub(r"\b(?:\w+[.!]+ +){2,}\w+\b", lambda m: re.sub(r"[.!]+", "", m.group(0)), text)  # "i. want. to. die"
    text = re.sub(r"\b(?:[a-z] ){2,}[a-z]\b", _resplit, text)  # "i w a n t", "k i l l"
    text = re.sub(r"\b[a-z]{7,}\b", _resplit_glued, text)  # "killmyself", "wanttodie"
    for pattern, repl in _APOSTROPHES:
        text = re.sub(pattern, repl, text)
    text = _WORDS_RE.sub(lambda m: _WORDS[m.group(1)], text)
    for pattern, repl in _PHRASES_RE:
        text = pattern.sub(repl, text)
    return re.sub(r"\s+", " ", text).strip()
