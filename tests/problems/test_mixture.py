"""A mixture gives the requested count per source, with stable ids, whatever it skips on the way."""

from pathlib import Path

import pytest
from hub_layouts import codeforces, codeforces_row, numina, numina_row

from distill.errors import RecipeError
from distill.problems.mixture import Checks, build, interleave, problem_id, targets
from distill.recipe import ProblemsCfg, load_recipe

MATH = [numina_row(f"What is ${a} + {b}$ apples?", str(a + b)) for a in range(10, 40) for b in (3, 7)]


def two_sources(tmp_path):
    math = numina(tmp_path / "numina", MATH)
    code = codeforces(tmp_path / "codeforces", [codeforces_row(f"{i}A", description=f"Print {i} plus the input.")
                                                for i in range(1, 21)])
    return str(math), str(code)


def test_weights_give_exact_counts_per_source(tmp_path):
    math, code = two_sources(tmp_path)
    cfg = ProblemsCfg(limit=25, decontaminate=[], sources=[
        {"dataset": math, "layout": "numina", "weight": 0.7}, {"dataset": code, "layout": "codeforces", "weight": 0.3}])
    problems, report = build(cfg)
    counts = {s["name"]: s["kept"] for s in report["sources"]}
    assert counts == {"numina": 18, "codeforces": 7}  # 17.5 / 7.5 -> largest remainders, summing to 25
    assert report["by_domain"] == {"math": 18, "code": 7} and len(problems) == 25
    assert len({p.id for p in problems}) == 25
    # Interleaved: the first ten already hold both sources (a run stopped early keeps the mixture).
    assert {p.domain for p in problems[:10]} == {"math", "code"}


def test_limits_are_met_despite_skipped_rows_and_a_shortfall_is_reported(tmp_path):
    rows = [numina_row("Prove it.", "proof", question_type="proof")] * 5 + MATH[:6]
    root = numina(tmp_path / "numina", rows)
    problems, report = build(ProblemsCfg(decontaminate=[], sources=[{"dataset": str(root), "layout": "numina",
                                                                     "limit": 4}]))
    assert len(problems) == 4
    many, report = build(ProblemsCfg(decontaminate=[], sources=[{"dataset": str(root), "layout": "numina",
                                                                 "limit": 50}]))
    assert len(many) == 6 and report["sources"][0]["shortfall"] == 44
    assert report["sources"][0]["skipped"]["proof"] == 5


def test_ids_are_stable_across_row_order_source_order_and_new_sources(tmp_path):
    math, code = two_sources(tmp_path)
    one = build(ProblemsCfg(decontaminate=[], sources=[{"dataset": math, "layout": "numina"}]))[0]
    reversed_rows = numina(tmp_path / "reversed", list(reversed(MATH)))
    both = build(ProblemsCfg(decontaminate=[], sources=[{"dataset": code, "layout": "codeforces"},
                                                        {"dataset": str(reversed_rows), "layout": "numina"}]))[0]
    by_text = {p.problem: p.id for p in one}
    assert all(by_text[p.problem] == p.id for p in both if p.domain == "math")
    assert {p.id for p in one} <= {p.id for p in both}
    # The id is the hash of the normalised text: spacing and case do not make a new problem.
    assert problem_id("math", "What is  $2+2$ ?") == problem_id("math", "what is $2+2$ ?")
    assert problem_id("math", "What is $2+2$?") != problem_id("math", "What is $2+3$?")


def test_a_limited_source_draws_a_seeded_sample_not_the_first_rows(tmp_path):
    math, _ = two_sources(tmp_path)

    def pick(seed):
        cfg = ProblemsCfg(seed=seed, decontaminate=[], sources=[{"dataset": math, "layout": "numina", "limit": 8}])
        return [p.id for p in build(cfg)[0]]

    assert pick(0) == pick(0)
    assert pick(0) != pick(1)
    first_rows = {problem_id("math", r["problem"]) for r in MATH[:8]}
    assert set(pick(0)) != first_rows


def test_duplicates_across_sources_count_once_and_the_later_source_takes_another_row(tmp_path):
    a = numina(tmp_path / "a", MATH[:6])
    b = numina(tmp_path / "b", MATH[:3] + MATH[10:16])
    problems, report = build(ProblemsCfg(decontaminate=[], sources=[
        {"dataset": str(a), "layout": "numina", "name": "a"},
        {"dataset": str(b), "layout": "numina", "name": "b", "limit": 5}]))
    assert len(problems) == 11 and len({p.id for p in problems}) == 11
    assert report["sources"][1]["kept"] == 5 and report["sources"][1]["skipped"].get("duplicate", 0) >= 1


def test_checks_drop_problems_and_say_why(tmp_path):
    math, _ = two_sources(tmp_path)

    def contaminated(p):
        return "contaminated:MATH-500" if "$10 + 3$" in p.problem else None

    def gold(p):
        return "unparseable_gold" if p.answer == "45" else None

    problems, report = build(ProblemsCfg(decontaminate=[], sources=[{"dataset": math, "layout": "numina"}]),
                             Checks(gold=gold, contaminated=contaminated))
    skipped = report["sources"][0]["skipped"]
    assert skipped == {"contaminated:MATH-500": 1, "unparseable_gold": 1}
    assert len(problems) == len(MATH) - 2
    assert report["sources"][0]["removed"]["contaminated:MATH-500"][0].startswith("What is $10 + 3$")


def test_targets_and_interleave():
    cfg = ProblemsCfg(limit=10, decontaminate=[], sources=[{"dataset": "x", "layout": "numina", "weight": 1},
                                                           {"dataset": "y", "layout": "numina", "weight": 1},
                                                           {"dataset": "z", "layout": "numina", "weight": 1}])
    assert sorted(targets(cfg)) == [3, 3, 4] and sum(targets(cfg)) == 10
    assert [p for p in interleave([["a1", "a2", "a3", "a4"], ["b1", "b2"]])] == ["a1", "b1", "a2", "a3", "b2", "a4"]


@pytest.mark.parametrize("problems,fix", [
    ("problems: {path: a.jsonl, sources: [{dataset: x, layout: numina}]}", "exactly one of them"),
    ("problems: {sources: [{dataset: x, layout: numina, weight: 1}]}", "set it"),
    ("problems: {limit: 5, sources: [{dataset: x, layout: numina}]}", "weight"),
    ("problems: {sources: [{dataset: x, layout: numina, limit: 3, weight: 1}]}", "not both"),
    ("problems: {sources: [{dataset: x, layout: numnia}]}", "unknown layout 'numnia'"),
    ("problems: {sources: [{dataset: x, layout: numina, where: {rating: {above: 3}}}]}", "min: .., max"),
    ("problems: {sources: [{dataset: x, layout: numina, wieght: 1}]}", "unknown key"),
])
def test_bad_problem_sections_name_the_key_and_the_fix(tmp_path, problems, fix):
    path = tmp_path / "r.yaml"
    path.write_text(f"student: {{model: m}}\nteacher: {{backend: hf, model: m}}\n{problems}\n"
                    "eval: {problems: e.jsonl}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert fix in str(err.value) and "problems" in str(err.value)


def test_hub_sources_are_decontaminated_against_the_four_benchmarks_by_default():
    cfg = ProblemsCfg(sources=[{"dataset": "AI-MO/NuminaMath-1.5", "layout": "numina", "limit": 10}])
    assert cfg.decontaminate == ["MATH-500", "AIME24", "AIME25", "GPQA-Diamond"]
    assert ProblemsCfg(path="data/problems/arithmetic.jsonl").decontaminate == []


def test_set_reaches_a_source_by_index(tmp_path):
    root = Path(__file__).resolve().parents[2] / "recipes" / "7b.yaml"
    r = load_recipe(root, ["problems.sources.0.dataset=/data/OpenR1-Math-220k", "problems.sources.1.limit=50"])
    assert r.problems.sources[0].dataset == "/data/OpenR1-Math-220k" and r.problems.sources[1].limit == 50
    with pytest.raises(RecipeError, match="not an item"):
        load_recipe(root, ["problems.sources.5.limit=1"])
