"""The bundled problem set: what the script makes, every gold answer recomputed from the problem's
own words (not from the generator), and the splits free of each other's computations."""

import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from distill.filter.dedup import Decontaminator, find_duplicates
from distill.filter.verify import is_correct
from distill.problems.bundled import GENERATORS, generate_bundled, load_split
from distill.records import load_problems

BUNDLED = Path(__file__).resolve().parents[2] / "data/problems/arithmetic.jsonl"

# Each family's wording, read back: the numbers as the problem states them, and what they make.
N = r"(\d+)"
W = r"[A-Z][a-z]+"
READERS = {
    "add": (rf"^{W} has {N} \w+ and gets {N} more\. How many", lambda a, b: a + b),
    "sub": (rf"^{W} has {N} \w+ and gives away {N}\. How many .* left\?$", lambda a, b: a - b),
    "mul": (rf"^There are {N} bags with {N} \w+ in each bag\. How many", lambda a, b: a * b),
    "two_step": (rf"^{W} starts with {N} \w+, finds {N} more, then loses {N}\. How many", lambda a, b, c: a + b - c),
    "linear": (rf"^Solve for \$x\$: \${N}x \+ {N} = {N}\$\.$", lambda a, b, c: Fraction(c - b, a)),
    "mul_add": (rf"^{W} has {N} \w+ and buys {N} packs with {N} \w+ in each pack\. How many",
                lambda c, a, b: a * b + c),
    "share": (rf"^{W} has {N} \w+ and finds {N} more, then shares them equally among {N} friends\. How many",
              lambda a, b, k: Fraction(a + b, k)),
    "multi_step": (rf"^A shop has {N} \w+\. It sells {N} in the morning and {N} in the afternoon, then gets {N} more\.",
                   lambda a, b, c, d: a - b - c + d),
}


@pytest.fixture(scope="module")
def bundled():
    return load_problems(BUNDLED)


def test_bundled_file_is_what_the_script_makes(bundled):
    assert [p.model_dump() for p in bundled] == [p.model_dump() for p in generate_bundled()]


def test_sizes_and_families(bundled):
    splits = Counter(p.split for p in bundled)
    assert splits["eval"] >= 500 and splits["train"] >= 1000
    assert set(READERS) == set(GENERATORS)
    per_family = Counter((p.source.split("/")[1], p.split) for p in bundled)
    assert {per_family[(k, "eval")] for k in GENERATORS} == {63}  # every family weighs alike in the eval split
    assert len({p.id for p in bundled}) == len(bundled)
    # A recipe's `limit` takes the first N of a split: they must cover every family, not one.
    assert {p.source for p in load_split(BUNDLED, "train", 16)} == {f"distill-bundled/{k}" for k in GENERATORS}


def test_every_gold_answer_is_recomputed_from_the_text(bundled):
    wrong = []
    for p in bundled:
        pattern, compute = READERS[p.source.split("/")[1]]
        m = re.search(pattern, p.problem)
        assert m, f"{p.id}: wording not recognised: {p.problem}"
        value = compute(*map(int, m.groups()))
        if not (Fraction(value).denominator == 1 and value >= 0 and str(int(value)) == p.answer):
            wrong.append((p.id, p.answer, value))
    assert not wrong, f"gold answers that the problem's numbers do not give: {wrong[:5]}"


def test_the_filters_verifier_takes_each_eval_answer(bundled):
    """The eval split through the verifier the filter and eval use: the gold boxed is right, one off is wrong."""
    for p in [p for p in bundled if p.split == "eval"]:
        assert is_correct(f"<think>\nwork\n</think>\n\n\\boxed{{{p.answer}}}", "math", p.answer), p.id
        assert not is_correct(f"<think>\nwork\n</think>\n\n\\boxed{{{int(p.answer) + 1}}}", "math", p.answer), p.id


def test_splits_share_no_computation(bundled):
    train = [p for p in bundled if p.split == "train"]
    held = [p for p in bundled if p.split == "eval"]
    assert not {p.problem for p in train} & {p.problem for p in held}
    # The filter's decontamination (word 8-grams with the same numbers) finds no train problem in the eval split...
    deco = Decontaminator([p.problem for p in held], n=8, same_numbers=True)
    assert not [p.id for p in train if deco.contaminated(p.problem)]
    # ...and it would find a train problem that repeated an eval one with other names.
    add = next(p for p in held if p.source.endswith("/add"))
    assert deco.contaminated(add.problem.replace(add.problem.split()[0], "Zoe"))
    # Nor does its near-duplicate check find the same problem twice in the train split.
    assert find_duplicates([(p.id, p.problem) for p in train]) == {}
