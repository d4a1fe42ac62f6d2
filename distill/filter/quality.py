"""Quality checks on a trace's text: language mixing, repetition loops and length in tokens.

    quality_reasons(problem, reasoning, answer, n_tokens, cfg)  # [] or e.g. ["repetition"]

Language mixing: each word is assigned the Unicode script of its letters (a CJK, kana or Hangul
character counts as one word, since those scripts do not space words). Scripts of the problem's
own text are native; Greek and symbols are math, not language. Above `max_foreign_share` of
foreign words the trace is `language_mixing` (R1's known habit of drifting into Chinese).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORDISH = re.compile(r"[^\W\d_]+", re.UNICODE)
_UNSPACED = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI")
_NEUTRAL = {"GREEK", "COMMON"}  # math letters (pi, theta) are not a language


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token count: words and punctuation marks (close to BPE counts for English)."""
    return len(_TOKEN.findall(text))


@lru_cache(maxsize=65536)
def script_of(ch: str) -> str:
    """The Unicode script family of a letter, from its name (LATIN, CYRILLIC, CJK, ...)."""
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "COMMON"
    first = name.split(" ", 1)[0]
    if first in ("MATHEMATICAL", "DOUBLE-STRUCK", "SCRIPT", "BLACK-LETTER"):
        return "COMMON"
    return first


def script_words(text: str) -> Counter:
    """How many words of each script a text holds (each unspaced-script character is a word)."""
    counts: Counter = Counter()
    for word in _WORDISH.findall(text):
        if word.isascii():  # ASCII letters are LATIN: the common case, without a name lookup per letter
            counts["LATIN"] += 1
            continue
        scripts = [script_of(c) for c in word]
        unspaced = sum(1 for s in scripts if s.startswith(_UNSPACED))
        if unspaced:
            counts["CJK-like"] += unspaced
        rest = [s for s in scripts if not s.startswith(_UNSPACED)]
        if rest:
            counts[Counter(rest).most_common(1)[0][0]] += 1
    return counts


def foreign_share(problem: str, text: str) -> float:
    """Share of the words of `text` in a script that the problem does not use."""
    native = set(script_words(problem)) | _NEUTRAL
    if not native - _NEUTRAL:
        native.add("LATIN")  # a problem of formulas only: English is expected
    counts = script_words(text)
    total = sum(counts.values())
    if not total:
        return 0.0
    return sum(n for s, n in counts.items() if s not in native) / total


def is_repetitive(text: str, n: int = 8, max_share: float = 0.3, min_words: int = 64,
                  max_line_repeats: int = 4, min_line_chars: int = 24) -> bool:
    """A looping chain: one word n-gram covering more than `max_share` of the text, or one
    non-trivial line (>= `min_line_chars`) said more than `max_line_repeats` times."""
    lines = Counter(line.strip() for line in text.splitlines() if len(line.strip()) >= min_line_chars)
    if lines and lines.most_common(1)[0][1] > max_line_repeats:
        return True
    words = text.split()
    if len(words) < min_words:
        return False
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return grams.most_common(1)[0][1] * n / len(words) > max_share


def quality_reasons(problem: str, reasoning: str | None, answer: str, n_tokens: int, cfg) -> list[str]:
    """`language_mixing`, `repetition`, `too_long`, `too_short` as the filter config asks."""
    reasons = []
    text = (reasoning or "") + "\n" + answer
    if cfg.max_foreign_share is not None and foreign_share(problem, text) > cfg.max_foreign_share:
        reasons.append("language_mixing")
    if is_repetitive(text, n=cfg.repetition_ngram, max_share=cfg.repetition_max_share,
                     max_line_repeats=cfg.max_line_repeats):
        reasons.append("repetition")
    if cfg.max_completion_tokens and n_tokens > cfg.max_completion_tokens:
        reasons.append("too_long")
    if cfg.min_completion_tokens and n_tokens < cfg.min_completion_tokens:
        reasons.append("too_short")
    return reasons
