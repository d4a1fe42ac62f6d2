"""Problems: the bundled arithmetic/algebra word problems and loading a recipe's split.

    python scripts/make_problems.py          # rewrites data/problems/arithmetic.jsonl
    problems = select(load_problems(path), split="train", limit=60)
"""

from __future__ import annotations

import random
from pathlib import Path

from distill.errors import DistillError
from distill.records import Problem, load_problems

NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goro", "Hana", "Ivan", "Jade", "Kofi", "Lena"]
ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells", "stamps", "beads"]


def _add(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(10, 60), rng.randint(10, 39)
    who, item = rng.choice(NAMES), rng.choice(ITEMS)
    return f"{who} has {a} {item} and gets {b} more. How many {item} does {who} have now?", a + b


def _sub(rng: random.Random) -> tuple[str, int]:
    a = rng.randint(30, 99)
    b = rng.randint(10, a - 5)
    who, item = rng.choice(NAMES), rng.choice(ITEMS)
    return f"{who} has {a} {item} and gives away {b}. How many {item} does {who} have left?", a - b


def _mul(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 9), rng.randint(2, 12)
    item = rng.choice(ITEMS)
    return f"There are {a} bags with {b} {item} in each bag. How many {item} are there in all?", a * b


def _two_step(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(10, 40), rng.randint(5, 20)
    c = rng.randint(2, a + b - 2)
    who, item = rng.choice(NAMES), rng.choice(ITEMS)
    text = f"{who} starts with {a} {item}, finds {b} more, then loses {c}. How many {item} are left?"
    return text, a + b - c


def _linear(rng: random.Random) -> tuple[str, int]:
    x, a, b = rng.randint(1, 12), rng.randint(2, 9), rng.randint(1, 30)
    return f"Solve for $x$: ${a}x + {b} = {a * x + b}$.", x


GENERATORS = {"add": _add, "sub": _sub, "mul": _mul, "two_step": _two_step, "linear": _linear}


def generate_bundled(per_kind: int = 80, eval_fraction: float = 0.2, seed: int = 1234) -> list[Problem]:
    """The bundled set: `per_kind` problems of each kind, interleaved, with a train/eval split."""
    rng = random.Random(seed)
    problems, seen = [], set()
    for i in range(per_kind):
        for kind, gen in GENERATORS.items():
            text, answer = gen(rng)
            while text in seen:  # keep problems unique so the split cannot leak
                text, answer = gen(rng)
            seen.add(text)
            split = "eval" if rng.random() < eval_fraction else "train"
            problems.append(
                Problem(id=f"{kind}-{i:03d}", problem=text, answer=str(answer), domain="math",
                        source=f"distill-bundled/{kind}", split=split)
            )
    return problems


def select(problems: list[Problem], split: str = "all", limit: int | None = None) -> list[Problem]:
    """The problems of `split` (`all` ignores the split), first `limit` of them."""
    chosen = [p for p in problems if split == "all" or p.split == split]
    if not chosen:
        raise DistillError(f"no problems with split {split!r}; check `split` in the recipe")
    return chosen[:limit] if limit else chosen


def load_split(path: str | Path, split: str = "all", limit: int | None = None) -> list[Problem]:
    return select(load_problems(path), split, limit)
