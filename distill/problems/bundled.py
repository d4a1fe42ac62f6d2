"""Problems: the bundled arithmetic/algebra word problems and loading a recipe's split.

Eight families: five one-step or two-step ones (add, sub, mul, two_step, linear) and three harder
ones with two or three operations (mul_add, share, multi_step). Each family has `per_kind` problems,
`eval_per_kind` of them in the eval split. No two problems of a family use the same numbers, so an
eval problem is a computation the train split never shows (the filter's decontamination, which
matches word 8-grams with the same numbers, finds nothing between the splits; tests/problems checks).

    python scripts/make_problems.py          # rewrites data/problems/arithmetic.jsonl
    problems = select(load_problems(path), split="train", limit=60)
"""

from __future__ import annotations

import random
import re
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
    a, b = rng.randint(2, 9), rng.randint(2, 40)
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


def _mul_add(rng: random.Random) -> tuple[str, int]:
    """Two operations: a product, then a sum."""
    a, b, c = rng.randint(2, 9), rng.randint(3, 12), rng.randint(2, 30)
    who, item = rng.choice(NAMES), rng.choice(ITEMS)
    text = (f"{who} has {c} {item} and buys {a} packs with {b} {item} in each pack. "
            f"How many {item} does {who} have now?")
    return text, a * b + c


def _share(rng: random.Random) -> tuple[str, int]:
    """Two operations: a sum, then an exact division."""
    k, each = rng.randint(2, 6), rng.randint(3, 15)
    a = rng.randint(2, k * each - 2)
    who, item = rng.choice(NAMES), rng.choice(ITEMS)
    text = (f"{who} has {a} {item} and finds {k * each - a} more, then shares them equally among {k} friends. "
            f"How many {item} does each friend get?")
    return text, each


def _multi_step(rng: random.Random) -> tuple[str, int]:
    """Three operations in a row."""
    b, c, d = rng.randint(5, 20), rng.randint(5, 20), rng.randint(5, 30)
    a = rng.randint(b + c + 5, 99)
    item = rng.choice(ITEMS)
    text = (f"A shop has {a} {item}. It sells {b} in the morning and {c} in the afternoon, then gets {d} more. "
            f"How many {item} does the shop have now?")
    return text, a - b - c + d


GENERATORS = {"add": _add, "sub": _sub, "mul": _mul, "two_step": _two_step, "linear": _linear,
              "mul_add": _mul_add, "share": _share, "multi_step": _multi_step}


def numbers_in(text: str) -> frozenset[str]:
    """The numbers a problem states: with its family, what makes it the same computation as another."""
    return frozenset(re.findall(r"\d+", text))


def generate_bundled(per_kind: int = 250, eval_per_kind: int | None = None, seed: int = 1234) -> list[Problem]:
    """The bundled set: `per_kind` problems of each family with distinct numbers, interleaved (the first
    N of a split cover every family), `eval_per_kind` of each family (default: a quarter, rounded up:
    8 x 63 = 504 eval problems) in the eval split."""
    eval_per_kind = -(-per_kind // 4) if eval_per_kind is None else eval_per_kind
    if not 0 <= eval_per_kind <= per_kind:
        raise ValueError(f"eval_per_kind must lie in [0, per_kind={per_kind}] (got {eval_per_kind})")
    rng = random.Random(seed)
    made: dict[str, list[tuple[str, int]]] = {}
    for kind, gen in GENERATORS.items():
        seen: set[frozenset[str]] = set()
        rows = made[kind] = []
        for _ in range(per_kind * 200):  # far more tries than any family needs
            if len(rows) == per_kind:
                break
            text, answer = gen(rng)
            if (nums := numbers_in(text)) not in seen:
                seen.add(nums)
                rows.append((text, answer))
        if len(rows) < per_kind:
            raise ValueError(f"family {kind!r} has fewer than {per_kind} problems with distinct numbers")
    held = {kind: set(rng.sample(range(per_kind), eval_per_kind)) for kind in GENERATORS}
    return [Problem(id=f"{kind}-{i:03d}", problem=made[kind][i][0], answer=str(made[kind][i][1]), domain="math",
                    source=f"distill-bundled/{kind}", split="eval" if i in held[kind] else "train")
            for i in range(per_kind) for kind in GENERATORS]


def select(problems: list[Problem], split: str = "all", limit: int | None = None) -> list[Problem]:
    """The problems of `split` (`all` ignores the split), first `limit` of them."""
    chosen = [p for p in problems if split == "all" or p.split == split]
    if not chosen:
        raise DistillError(f"no problems with split {split!r}; check `split` in the recipe")
    return chosen[:limit] if limit else chosen


def load_split(path: str | Path, split: str = "all", limit: int | None = None) -> list[Problem]:
    return select(load_problems(path), split, limit)
