"""Answer extraction and checking, shared by the filter and evaluation so both judge alike.

    parts = split_r1(completion)                        # reasoning, answer text, form problems
    predicted = extract_answer(parts.answer, "math")    # last \\boxed{}, then per-domain fallbacks
    check_answer("math", gold, predicted)               # [] when right, else the reasons
    is_correct(completion, "math", gold)                # evaluation's yes/no with the same rules

Rules where the literature is silent (kept in one place so filter and eval agree):
- Final answer: the last `\\boxed{}`/`\\fbox{}` of the text after `</think>`. Math falls back to an
  "answer is X" / "Answer: X" phrase, then to the only number of a short (<= 25 words) answer
  section; several numbers there are ambiguous and give `no_answer`.
- Answers written in English number words ("thirty-seven", "one hundred and five") count as that
  number when the whole answer is number words; words inside a longer phrase are not read.
- Choice: a letter (`B`, `(B)`, `\\text{B}`) or the option's own text, boxed or after "answer is".
- Code: the last ```python or ```cpp block after `</think>` (else the last untagged block, else the
  last block), judged by running its tests in the jail; the language comes from the fence tag
  (an untagged block with `#include` is C++).
"""

from __future__ import annotations

import functools
import re
import threading

from distill.r1 import last_boxed, split_r1

# --- numbers written in words -------------------------------------------------------------------
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
          "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SMALL = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}


def words_to_number(text: str) -> int | None:
    """"thirty-seven" -> 37, "minus two" -> -2; None unless the whole text is number words."""
    words = re.sub(r"[-\s,]+", " ", text.strip().lower().rstrip(".")).split()
    sign = 1
    if words and words[0] in ("minus", "negative"):
        sign, words = -1, words[1:]
    words = [w for w in words if w != "and"]
    if not words or any(w not in _SMALL and w not in _SCALES for w in words):
        return None
    total = current = 0
    for w in words:
        if w in _SMALL:
            current += _SMALL[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[w]
            current = 0
    return sign * (total + current)


# --- extraction -----------------------------------------------------------------------------------
_PHRASE = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+?)(?:\n|$|(?<=[^\d])\.(?:\s|$))",
                     re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_LETTER = re.compile(r"^\(?\s*(?:\\text\{\s*)?([A-J])\s*\}?\s*\)?[.:]?$")
_LETTER_IN_TEXT = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*:?\s*\**\(?([A-J])\)?\**(?![A-Za-z])"
                             r"|\(([A-J])\)|\*\*([A-J])\*\*")
_CODE_BLOCK = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def _clean(ans: str) -> str:
    return ans.strip().strip("*").strip().strip("$").strip().rstrip(".").strip()


class Code(str):
    """A code answer: the block's text, with the language its fence names (None: not judgeable)."""

    language: str | None = None


def last_code_block(text: str) -> Code | None:
    """The last ```python / ```cpp block; else the last untagged block; else the last block."""
    from distill.filter.code_tests import LANGUAGES, language

    blocks = _CODE_BLOCK.findall(text)
    tagged = [b for b in blocks if b[0].lower() in LANGUAGES]
    untagged = [b for b in blocks if not b[0]]
    pick = (tagged or untagged or blocks or [None])[-1]
    if pick is None:
        return None
    code = Code(pick[1])
    code.language = language(pick[1], pick[0])
    return code


def _choice_letter(ans: str, choices: list[str] | None) -> str | None:
    m = _LETTER.match(_clean(ans))
    if m:
        return m.group(1)
    norm = _norm_option(ans)
    for i, option in enumerate(choices or []):
        if norm and norm == _norm_option(option):
            return chr(ord("A") + i)
    return None


def _norm_option(text: str) -> str:
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    return re.sub(r"[\s$*.]+", " ", text).strip().lower()


def extract_answer(answer_text: str, domain: str, choices: list[str] | None = None,
                   fallbacks: bool = True) -> str | None:
    """The final answer of an answer section: the last \\boxed{} first, then the domain's fallbacks.

    `fallbacks=False` (used when no think block closed, so this is reasoning, not an answer)
    accepts a boxed answer or a code block only."""
    if domain == "code":
        return last_code_block(answer_text)
    boxed = last_boxed(answer_text)
    if boxed is not None and domain == "choice":
        return _choice_letter(boxed, choices) or boxed.strip()
    if boxed is not None or not fallbacks:
        return None if boxed is None else boxed.strip()
    if domain == "choice":
        phrases = _PHRASE.findall(answer_text)
        if phrases and (letter := _choice_letter(phrases[-1], choices)):
            return letter
        if (letter := _choice_letter(answer_text, choices)) is not None:
            return letter
        hits = [next(g for g in m if g) for m in _LETTER_IN_TEXT.findall(answer_text)]
        if hits:
            return hits[-1]
        named = [chr(ord("A") + i) for i, o in enumerate(choices or [])
                 if _norm_option(o) and re.search(rf"\b{re.escape(_norm_option(o))}\b", _norm_option(answer_text))]
        return named[0] if len(named) == 1 else None
    phrases = _PHRASE.findall(answer_text)
    if phrases and _clean(phrases[-1]):
        return _clean(phrases[-1])
    words = answer_text.split()
    numbers = set(_NUMBER.findall(answer_text))
    if len(words) <= 25 and len(numbers) == 1:  # one number in a short answer: that is the answer
        return numbers.pop().replace(",", "")
    if len(words) <= 6 and words_to_number(answer_text) is not None:
        return answer_text.strip()
    return None


# --- checking -------------------------------------------------------------------------------------
def _as_math(text: str) -> str:
    n = words_to_number(re.sub(r"\\text\{([^}]*)\}", r"\1", text))
    return str(n) if n is not None else text


def _timeout(timeout_s: float) -> int | None:
    # math-verify's timeouts use SIGALRM, which only the main thread may set; elsewhere the
    # filter's worker-process backstop is the only limit.
    return max(1, int(timeout_s)) if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str, timeout: int | None):
    from math_verify import parse

    return parse(f"${_as_math(gold)}$", parsing_timeout=timeout)


def math_equal(gold: str, predicted: str, timeout_s: float = 5.0) -> bool | None:
    """math-verify equivalence; None when the gold answer itself cannot be parsed."""
    from math_verify import parse, verify

    t = _timeout(timeout_s)
    gold_parsed = _parse_gold(gold, t)
    if not gold_parsed:
        return None
    pred_parsed = parse(f"\\boxed{{{_as_math(predicted)}}}", parsing_timeout=t)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=t))


def choice_equal(gold: str, predicted: str, choices: list[str] | None) -> bool:
    """Same option: by letter, or by the option's text against the gold letter's option."""
    gold_letter = _choice_letter(gold, choices)
    pred_letter = _choice_letter(predicted, choices)
    if gold_letter and pred_letter:
        return gold_letter == pred_letter
    return _norm_option(gold) == _norm_option(predicted)


def check_answer(domain: str, gold: str, predicted: str | None, choices: list[str] | None = None,
                 timeout_s: float = 5.0, tests: list | None = None, sandbox_cfg=None) -> list[str]:
    """Correctness reasons for one extracted answer: [] when right.

    Code is judged by running `tests` ({input, output[, fn_name]} dicts or CodeTest) in the jail;
    `sandbox_cfg` is a `CodeLimits`. No jail here and no opt-out: `code_jail_unavailable`."""
    if predicted is None or not predicted.strip():
        return ["no_answer"]
    if domain == "choice":
        return [] if choice_equal(gold, predicted, choices) else ["wrong_answer"]
    if domain == "code":
        if not tests:
            return ["tests_failed"]  # nothing to run: a code answer cannot be judged by its text
        from distill.filter.code_tests import language
        from distill.filter.sandbox import CodeLimits, JailUnavailable, judge_code

        lang = getattr(predicted, "language", None) or language(predicted, "")
        tests = [t if isinstance(t, dict) else t.model_dump() for t in tests]
        try:
            return [] if judge_code(predicted, lang, tests, sandbox_cfg or CodeLimits()).passed else ["tests_failed"]
        except JailUnavailable:
            return ["code_jail_unavailable"]
    equal = math_equal(gold, predicted, timeout_s)
    if equal is None:
        return ["unparseable_gold"]
    return [] if equal else ["wrong_answer"]


def is_correct(text: str, domain: str, gold: str, choices: list[str] | None = None,
               require_think: bool = False, tests: list | None = None) -> bool:
    """Evaluation's yes/no with the filter's rules: a closed think block (if required) and a right answer."""
    parts = split_r1(text)
    if require_think and parts.form:
        return False
    predicted = extract_answer(parts.answer, domain, choices, fallbacks=parts.reasoning is not None)
    return not check_answer(domain, gold, predicted, choices, tests=tests)
