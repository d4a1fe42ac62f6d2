"""Answer extraction and checking, shared by the filter and evaluation so both judge alike.

    parts = split_r1(completion)            # reasoning, answer text, form problems
    verdict_reasons(trace_like, cfg)        # [] when correct and well-formed
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from distill.prompts import THINK_CLOSE, THINK_OPEN


@dataclass
class R1Parts:
    reasoning: str | None  # None when there is no closed think block
    answer: str  # the text after </think> (the whole text when no block)
    form: list[str] = field(default_factory=list)  # form reasons: unclosed_think, ...


def split_r1(text: str) -> R1Parts:
    """Split an R1 completion into reasoning and final answer, whether or not `<think>` opens it."""
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if closes == 0:
        return R1Parts(None, text, ["unclosed_think" if opens else "missing_think"])
    form = ["multiple_think"] if opens > 1 or closes > 1 else []
    head, _, answer = text.rpartition(THINK_CLOSE)
    reasoning = head.split(THINK_OPEN, 1)[-1] if opens else head
    if not reasoning.strip():
        form.append("empty_think")
    return R1Parts(reasoning, answer, form)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced, nested boxes kept."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


_CHOICE = re.compile(r"\b([A-J])\b")


def extract_answer(answer_text: str, domain: str) -> str | None:
    """The final answer: the last \\boxed{} first; for choice questions a lone option letter."""
    boxed = last_boxed(answer_text)
    if boxed is not None:
        return boxed.strip()
    if domain == "choice":
        letters = _CHOICE.findall(answer_text)
        return letters[-1] if letters else None
    return None


def math_equal(gold: str, predicted: str, timeout_s: float = 5.0) -> bool | None:
    """math-verify equivalence; None when the gold answer itself cannot be parsed."""
    from math_verify import parse, verify

    t = max(1, int(timeout_s))
    gold_parsed = parse(f"${gold}$", parsing_timeout=t)
    if not gold_parsed:
        return None
    pred_parsed = parse(f"\\boxed{{{predicted}}}", parsing_timeout=t)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=t))


def choice_equal(gold: str, predicted: str, choices: list[str] | None) -> bool:
    predicted = predicted.strip().strip("().").upper()
    gold = gold.strip().strip("().").upper()
    if predicted == gold:
        return True
    if choices and len(gold) == 1 and gold.isalpha():  # the option's text counts too
        idx = ord(gold) - ord("A")
        return 0 <= idx < len(choices) and predicted.lower() == choices[idx].strip().upper().lower()
    return False


def check_answer(domain: str, gold: str, predicted: str | None, choices: list[str] | None = None,
                 timeout_s: float = 5.0) -> list[str]:
    """Correctness reasons for one extracted answer: [] when right."""
    if predicted is None or not predicted.strip():
        return ["no_answer"]
    if domain == "choice":
        return [] if choice_equal(gold, predicted, choices) else ["wrong_answer"]
    if domain == "code":
        return ["tests_failed"]  # code is judged by running tests, not by comparing text
    equal = math_equal(gold, predicted, timeout_s)
    if equal is None:
        return ["unparseable_gold"]
    return [] if equal else ["wrong_answer"]


def is_correct(text: str, domain: str, gold: str, choices: list[str] | None = None,
               require_think: bool = False) -> bool:
    """Evaluation's yes/no with the filter's rules: a closed think block (if required) and a right answer."""
    parts = split_r1(text)
    if require_think and parts.form:
        return False
    return not check_answer(domain, gold, extract_answer(parts.answer, domain), choices)
