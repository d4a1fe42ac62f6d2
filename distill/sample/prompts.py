"""Prompts per domain, and the teacher's extras (a system line, worked examples in R1 form).

Math asks for the answer in \\boxed{} (R1's own recommendation, kept word for word in
`distill.r1`); code asks for one ```python block that reads stdin, or the named function for
call-based tests; choice lists the lettered options (in the problem text) and asks for the letter
in \\boxed{}. Each answer form is what `distill.filter.verify` extracts. A recipe may reword the
teacher's instruction per domain (`sampling.prompts`); the student is always trained and judged
on the defaults, so what it learns and how it is asked stay one thing.

    messages = teacher_messages(problem, system=None, few_shot=0, prompts=recipe.sampling.prompts)
    messages = student_messages(trace)          # training and evaluation
"""

from __future__ import annotations

from typing import Any

from distill.r1 import R1_INSTRUCTION
from distill.r1 import user_prompt as r1_prompt

INSTRUCTIONS = {
    "math": R1_INSTRUCTION,
    "code": ("Please reason step by step, then write a complete Python 3 program that reads the input from "
             "standard input and writes the answer to standard output. Put the final program in one "
             "```python code block."),
    "code_call": ("Please reason step by step, then write the Python 3 function `{fn_name}` (complete the "
                  "starter code where there is one); it is called with each test's arguments and its return "
                  "value is checked. Put the final code in one ```python code block."),
    "choice": ("Please reason step by step, and put the letter of the correct option within \\boxed{} "
               "(for example \\boxed{A})."),
}

# Worked examples in R1 form, for teachers too small to produce the form unprompted (math only).
FEW_SHOT = [
    ("Mia has 14 shells and finds 23 more. How many shells does Mia have now?",
     "<think>\nMia starts with 14 shells. She finds 23 more, so 14 + 23 = 37.\n</think>\n\n"
     "Mia has \\boxed{37} shells."),
    ("Solve for $x$: $4x + 3 = 27$.",
     "<think>\nSubtract 3 from both sides: 4x = 24. Divide by 4: x = 6.\n</think>\n\n"
     "The solution is $x = \\boxed{6}$."),
    ("There are 5 boxes with 8 cards in each box. How many cards are there in all?",
     "<think>\nEach box has 8 cards and there are 5 boxes, so 5 * 8 = 40.\n</think>\n\n"
     "There are \\boxed{40} cards."),
    ("Omar has 61 coins and gives away 25. How many coins does Omar have left?",
     "<think>\nOmar gives away 25 of 61 coins: 61 - 25 = 36.\n</think>\n\n"
     "Omar has \\boxed{36} coins left."),
    # Problems with two or three operations: one worked example for each kind of step a chain needs.
    ("Nora starts with 25 buttons, finds 9 more, then loses 12. How many buttons are left?",
     "<think>\nNora finds 9 more: 25 + 9 = 34. Then she loses 12: 34 - 12 = 22.\n</think>\n\n"
     "There are \\boxed{22} buttons left."),
    ("Sam has 6 toys and buys 4 packs with 5 toys in each pack. How many toys does Sam have now?",
     "<think>\n4 packs with 5 toys in each pack is 4 * 5 = 20. With the 6 he has: 6 + 20 = 26.\n</think>\n\n"
     "Sam has \\boxed{26} toys now."),
    ("Rosa has 13 buttons and finds 11 more, then shares them equally among 4 friends. "
     "How many buttons does each friend get?",
     "<think>\nRosa has 13 + 11 = 24 buttons. Shared equally among 4 friends: 24 / 4 = 6.\n</think>\n\n"
     "Each friend gets \\boxed{6} buttons."),
    ("A shop has 70 toys. It sells 12 in the morning and 15 in the afternoon, then gets 20 more. "
     "How many toys does the shop have now?",
     "<think>\nThe shop sells 12 + 15 = 27 toys: 70 - 27 = 43. Then it gets 20 more: 43 + 20 = 63.\n</think>\n\n"
     "The shop has \\boxed{63} toys now."),
]

DEFAULT_SYSTEM = (
    "You are a careful math tutor. Think step by step inside <think> </think>, "
    "then give the final answer in \\boxed{}."
)


def call_name(tests: list | None) -> str | None:
    """The function a call-based problem's tests call (None for stdin/stdout tests)."""
    for t in tests or []:
        name = t.get("fn_name") if isinstance(t, dict) else getattr(t, "fn_name", None)
        if name:
            return name
    return None


def prompt_kind(domain: str, tests: list | None = None) -> str:
    """Which instruction a problem gets: math, code, code_call or choice."""
    if domain == "code":
        return "code_call" if call_name(tests) else "code"
    return domain if domain in INSTRUCTIONS else "math"


def user_prompt(record: Any, prompts: Any = None) -> str:
    """The user turn for a problem or trace (or a bare math question): its text, then its
    domain's instruction (`prompts`: a recipe's `sampling.prompts` overriding the defaults)."""
    if isinstance(record, str):
        text, domain, tests = record, "math", None
    else:
        text, domain, tests = record.problem, record.domain, record.tests
    kind = prompt_kind(domain, tests)
    override = getattr(prompts, kind, None) if prompts is not None else None
    if kind == "math" and override is None:
        return r1_prompt(text)  # R1's prompt exactly: problem, newline, instruction
    instruction = (override or INSTRUCTIONS[kind]).replace("{fn_name}", call_name(tests) or "solve")
    return f"{text}\n\n{instruction}"


def student_messages(record: Any) -> list[dict]:
    """What the student sees, in training and at evaluation: the zero-shot prompt of its domain."""
    return [{"role": "user", "content": user_prompt(record)}]


def teacher_messages(problem: Any, system: str | None = None, few_shot: int = 0, prompts: Any = None) -> list[dict]:
    """Chat messages for a teacher: optional system line, `few_shot` worked examples (math
    problems only: the examples are math), then the problem with its domain's instruction."""
    messages = [{"role": "system", "content": system}] if system else []
    if isinstance(problem, str) or problem.domain == "math":
        for q, a in FEW_SHOT[:few_shot]:
            messages += [{"role": "user", "content": user_prompt(q, prompts)}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": user_prompt(problem, prompts)})
    return messages
