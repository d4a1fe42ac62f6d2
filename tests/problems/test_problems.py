from pathlib import Path

from distill.filter.verify import math_equal
from distill.problems.bundled import generate_bundled, load_split
from distill.records import load_problems

BUNDLED = Path(__file__).resolve().parents[2] / "data/problems/arithmetic.jsonl"


def test_bundled_file_is_what_the_script_makes():
    on_disk = load_problems(BUNDLED)
    assert [p.model_dump() for p in on_disk] == [p.model_dump() for p in generate_bundled()]
    assert len(on_disk) >= 300


def test_splits_are_disjoint_and_answers_verify():
    train, held = load_split(BUNDLED, "train"), load_split(BUNDLED, "eval")
    assert len(held) >= 50 and len(train) >= 250
    assert not {p.problem for p in train} & {p.problem for p in held}
    for p in held[:20]:
        assert math_equal(p.answer, p.answer)
        assert not math_equal(p.answer, str(int(p.answer) + 1))
