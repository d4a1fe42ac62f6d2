import math

import pytest

from distill.evaluate.stats import mean_and_se, paired_difference, pass_at_k, summarise


@pytest.mark.parametrize("n,c,k,expected", [
    (5, 2, 1, 0.4),            # c/n
    (5, 2, 2, 0.7),            # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (5, 2, 3, 0.9),            # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (5, 2, 4, 1.0),            # fewer than k wrong samples: some k-subset always has a right one
    (5, 0, 3, 0.0),
    (100, 1, 10, 0.1),         # 1 - C(99,10)/C(100,10) = 1 - 90/100
    (4, 4, 4, 1.0),
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    exact = 1 - math.comb(1900, 100) / math.comb(2000, 100)  # Python ints: exact
    assert pass_at_k(2000, 100, 100) == pytest.approx(exact, rel=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def _rows(outcomes: dict[str, list[bool]], finish="stop", tokens=10) -> list[dict]:
    return [{"problem_id": pid, "correct": ok, "closed_think": True, "completion_tokens": tokens,
             "finish_reason": finish, "thinking_tokens": tokens // 2}
            for pid, oks in outcomes.items() for ok in oks]


def test_one_sample_per_problem_gives_the_binomial_standard_error():
    outcomes = {f"q{i}": [i < 10] for i in range(40)}  # 10 of 40 right
    s = summarise(_rows(outcomes), list(outcomes), n=1)
    assert s["pass@1"] == 0.25
    assert s["pass@1_se"] == pytest.approx(math.sqrt(0.25 * 0.75 / 40), abs=1e-4)


def test_standard_error_counts_problems_not_samples():
    """Four samples of a problem that is always right or always wrong add no information: the error
    is the one-sample binomial error over 20 problems, not over 80 samples (half as large)."""
    outcomes = {f"q{i}": [i < 5] * 4 for i in range(20)}
    s = summarise(_rows(outcomes), list(outcomes), n=4)
    assert s["pass@1"] == 0.25
    assert s["pass@1_se"] == pytest.approx(math.sqrt(0.25 * 0.75 / 20), abs=1e-4)
    assert s["pass@1_se"] > 1.9 * math.sqrt(0.25 * 0.75 / 80)


def test_clustered_error_by_hand_and_pass_k():
    outcomes = {"a": [True, False, True, False], "b": [False] * 4, "c": [True] * 4}
    s = summarise(_rows(outcomes), list(outcomes), n=4, pass_k=[2])
    rates = [0.5, 0.0, 1.0]
    assert s["pass@1"] == pytest.approx(0.5)
    assert s["pass@1_se"] == pytest.approx(math.sqrt(sum((r - 0.5) ** 2 for r in rates)) / 3, abs=1e-4)
    p2 = [1 - 1 / 6, 0.0, 1.0]  # a: 1 - C(2,2)/C(4,2)
    assert s["pass@2"] == pytest.approx(sum(p2) / 3, abs=1e-4)
    assert s["pass@2_se"] == pytest.approx(mean_and_se(p2)[1], abs=1e-4)


def test_truncation_and_lengths():
    rows = _rows({"a": [True, False]}, finish="length", tokens=64) + _rows({"b": [False, False]}, tokens=8)
    s = summarise(rows, ["a", "b"], n=2)
    assert s["truncation_rate"] == 0.5 and s["samples"] == 4
    assert s["mean_completion_tokens"] == 36.0 and s["mean_thinking_tokens"] == 18.0
    rows[0]["closed_think"] = False
    assert summarise(rows, ["a", "b"], n=2)["closed_think_rate"] == 0.75


def test_paired_difference_is_per_problem_and_tighter_than_the_two_errors():
    # 40 problems: the reference gets the first 12 right; the other file agrees on all but problems 10
    # and 11 (now wrong) and 30 (now right): -1 net, 3 discordant.
    ids = [f"p{i}" for i in range(40)]
    ref = _rows({pid: [i < 12] for i, pid in enumerate(ids)})
    other = _rows({pid: [(i < 10) or i == 30] for i, pid in enumerate(ids)})
    diff, se = paired_difference(other, ref)
    assert diff == pytest.approx(-1 / 40)
    d = [-1.0] * 2 + [1.0] + [0.0] * 37  # the per-problem differences
    assert se == pytest.approx(math.sqrt(sum((x - sum(d) / 40) ** 2 for x in d)) / 40)
    unpaired = math.hypot(summarise(other, ids, 1)["pass@1_se"], summarise(ref, ids, 1)["pass@1_se"])
    assert se < unpaired / 2  # the point of pairing: the shared answers cancel
    # Several samples per problem: each problem's rate, then the difference.
    diff, _ = paired_difference(_rows({"a": [True, False], "b": [True, True]}), _rows({"a": [True, True], "b": [False, True]}))
    assert diff == pytest.approx(((0.5 - 1.0) + (1.0 - 0.5)) / 2)
    with pytest.raises(ValueError, match="same problems"):
        paired_difference(other, ref[:-1])
