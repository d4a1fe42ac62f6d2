"""The R1 format, shared by every stage: `<think>` tags, the zero-shot R1 prompt, one R1-form text
from an API's separate `reasoning_content`, and splitting a completion into reasoning and answer.

    messages = student_messages("What is 2 + 3?")      # what the student sees, in training and eval
    text = normalise_completion(content, reasoning)   # "<think>\nreasoning\n</think>\n\nanswer"
    parts = split_r1(text)                            # parts.reasoning, parts.answer, parts.form
    last_boxed(parts.answer)                          # the final \\boxed{} answer, braces balanced
"""

from __future__ import annotations

from dataclasses import dataclass, field

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def user_prompt(problem: str) -> str:
    """The R1 prompt: the problem, then the instruction to reason and box the answer."""
    return f"{problem}\n{R1_INSTRUCTION}"


def student_messages(problem: str) -> list[dict]:
    """What the student sees, in training and at evaluation: the zero-shot R1 prompt."""
    return [{"role": "user", "content": user_prompt(problem)}]


def normalise_completion(content: str | None, reasoning: str | None = None) -> str:
    """One R1-form text: reasoning returned separately (DeepSeek's `reasoning_content`, vLLM's and
    SGLang's reasoning parsers) becomes the <think> block; a completion whose <think> was prefilled
    by the template gets it back; a text that already holds its block is kept as it is."""
    content = content or ""
    if reasoning and THINK_CLOSE not in content:
        return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{content.lstrip()}"
    if THINK_CLOSE in content and THINK_OPEN not in content:
        return f"{THINK_OPEN}\n{content.lstrip()}"
    return content


@dataclass
class R1Parts:
    reasoning: str | None  # None when there is no closed think block
    answer: str  # the text after </think> (the whole text when no block)
    form: list[str] = field(default_factory=list)  # form reasons: unclosed_think, ...


def split_r1(text: str, reasoning_content: str | None = None) -> R1Parts:
    """Split an R1 completion into reasoning and final answer, whether or not `<think>` opens it.

    `reasoning_content` is reasoning an API returned separately (DeepSeek's API does): then the
    completion is the answer alone. With neither tag the think block the template opened never
    closed, so that is `unclosed_think` too."""
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if reasoning_content is not None and opens == closes == 0:
        form = [] if reasoning_content.strip() else ["empty_think"]
        return R1Parts(reasoning_content, text, form)
    if closes == 0:
        return R1Parts(None, text, ["unclosed_think"])
    form = ["multiple_think"] if opens > 1 or closes > 1 else []
    head, _, answer = text.rpartition(THINK_CLOSE)
    reasoning = head.split(THINK_OPEN, 1)[-1] if opens else head
    if not reasoning.replace(THINK_OPEN, "").replace(THINK_CLOSE, "").strip():
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
