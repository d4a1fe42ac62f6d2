"""The teacher's prompt extras: a system line and worked examples in R1 form, which make a small
teacher produce R1-form traces. The R1 user prompt itself lives in `distill.r1`."""

from __future__ import annotations

from distill.r1 import user_prompt

# Worked examples in R1 form, for teachers too small to produce the form unprompted.
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
]

DEFAULT_SYSTEM = (
    "You are a careful math tutor. Think step by step inside <think> </think>, "
    "then give the final answer in \\boxed{}."
)


def teacher_messages(problem: str, system: str | None = None, few_shot: int = 0) -> list[dict]:
    """Chat messages for a teacher: optional system line and `few_shot` worked examples."""
    messages = [{"role": "system", "content": system}] if system else []
    for q, a in FEW_SHOT[:few_shot]:
        messages += [{"role": "user", "content": user_prompt(q)}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": user_prompt(problem)})
    return messages
