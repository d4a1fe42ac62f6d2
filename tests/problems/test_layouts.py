"""Each named layout, read from a local folder in its hub repo's layout through the same code as the
hub name (`datasets.load_dataset(name_or_folder, config, split=...)`), mapped to Problem records."""

import json

import pytest
from hub_layouts import (
    apps,
    arc,
    codeforces,
    codeforces_row,
    gpqa,
    math_lighteval,
    mmlu,
    numina,
    numina_row,
    openr1_math,
    taco,
    taco_row,
)

from distill.errors import DistillError
from distill.filter.verify import is_correct
from distill.problems import sources
from distill.problems.mixture import build, problem_id
from distill.recipe import ProblemsCfg
from distill.sample.prompts import user_prompt


def mixture(**source):
    return build(ProblemsCfg(sources=[source], decontaminate=[]))


def test_a_local_folder_goes_through_the_hub_call(tmp_path, monkeypatch):
    """The folder path takes the hub name's place in one and the same load_dataset call."""
    import datasets

    root = numina(tmp_path / "NuminaMath-1.5", [numina_row("What is $1+1$?", "2")])
    calls = []
    real = datasets.load_dataset

    def spy(path, name=None, **kw):
        calls.append((path, name, kw.get("split")))
        return real(path, name, **kw)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    mixture(dataset=str(root), layout="numina", config="default")
    assert calls == [(str(root), "default", "train")]


def test_numina_keeps_verifiable_valid_rows_and_filters_by_column(tmp_path):
    root = numina(tmp_path / "numina", [
        numina_row("Find $x$ if $2x+3=11$.", "4"),
        numina_row("Prove that $\\sqrt2$ is irrational.", "proof", question_type="proof"),
        numina_row("Find the largest prime below $30$.", "notfound"),
        numina_row("Compute $\\frac12+\\frac13$.", "\\frac{5}{6}", solution_is_valid="No"),
        numina_row("What is $7\\cdot 8$?", "56", source="synthetic_math", synthetic=True),
        numina_row("Evaluate $2^{10}$.", "1024", source="amc_aime"),
    ])
    problems, report = mixture(dataset=str(root), layout="numina")
    assert [p.answer for p in problems] == ["4", "56", "1024"]
    assert all(p.domain == "math" and p.split == "train" and p.source == "numina" for p in problems)
    assert problems[0].origin == "olympiads"  # the row's own `source` column is kept
    assert problems[0].id == problem_id("math", "Find $x$ if $2x+3=11$.")
    assert report["sources"][0]["skipped"] == {"proof": 1, "no_answer": 1, "filtered": 1}
    assert is_correct("<think>2x=8</think> \\boxed{4}", "math", problems[0].answer)

    picked, _ = mixture(dataset=str(root), layout="numina", where={"synthetic": False, "source": ["amc_aime"]})
    assert [p.answer for p in picked] == ["1024"]
    with pytest.raises(DistillError, match="no column sorce"):  # a misspelt filter is not an empty source
        mixture(dataset=str(root), layout="numina", where={"sorce": "amc_aime"})
    # null switches a layout default off: the row with an invalid solution comes back.
    loose, _ = mixture(dataset=str(root), layout="numina", where={"solution_is_valid": None})
    assert "\\frac{5}{6}" in [p.answer for p in loose]


def test_openr1_math_reads_the_problem_not_the_traces(tmp_path):
    root = openr1_math(tmp_path / "OpenR1-Math-220k", [{"problem": "What is $3^3$?", "answer": "27"},
                                                        {"problem": "Solve $x^2=9$, $x>0$.", "answer": "3"}])
    problems, _ = mixture(dataset=str(root), layout="openr1-math", config="default")
    assert [(p.problem, p.answer) for p in problems] == [("What is $3^3$?", "27"), ("Solve $x^2=9$, $x>0$.", "3")]
    assert not hasattr(problems[0], "generations")
    extended, _ = mixture(dataset=str(root), layout="openr1-math", config="extended")
    assert len(extended) == 1


def test_math_takes_the_gold_from_the_last_boxed_answer(tmp_path):
    root = math_lighteval(tmp_path / "MATH-lighteval", [
        {"problem": "Simplify $\\frac{6}{8}$.", "level": "Level 1", "type": "Prealgebra",
         "solution": "Divide by $2$: $\\frac{3}{4}$, so $\\boxed{\\frac{3}{4}}$. Check: \\boxed{\\frac{3}{4}}"},
        {"problem": "Find $n$.", "level": "Level 5", "type": "Algebra", "solution": "No box here."},
        {"problem": "What is $\\sqrt{49}$?", "level": "Level 5", "type": "Algebra", "solution": "It is $\\boxed{7}$."},
    ])
    problems, report = mixture(dataset=str(root), layout="math")
    assert [p.answer for p in problems] == ["\\frac{3}{4}", "7"]
    assert report["sources"][0]["skipped"] == {"no_answer": 1}
    hard, _ = mixture(dataset=str(root), layout="math", where={"level": "Level 5"})
    assert [p.answer for p in hard] == ["7"]


def test_codeforces_maps_official_tests_and_skips_what_stdout_cannot_judge(tmp_path):
    root = codeforces(tmp_path / "codeforces", [
        codeforces_row("1A"),
        codeforces_row("2B", interaction_format="Interact with the jury."),
        codeforces_row("3C", input_mode="file"),
        codeforces_row("4D", generated_checker="import sys\n"),
        codeforces_row("5E", official_tests_complete=False),
        codeforces_row("6F", rating=2400),
    ])
    problems, report = mixture(dataset=str(root), layout="codeforces", config="verifiable")
    assert len(problems) == 2 and all(p.domain == "code" for p in problems)
    p = problems[0]
    assert [t.model_dump(exclude_none=True) for t in p.tests] == [{"input": "1 2\n", "output": "3\n"},
                                                                   {"input": "5 7\n", "output": "12\n"}]
    assert p.time_limit_s == 2.0 and p.memory_mb == 256
    assert "## Input" in p.problem and "## Examples" in p.problem and "1 2" in p.problem
    assert report["sources"][0]["skipped"] == {"interactive": 1, "file_io": 1, "needs_checker": 1,
                                               "tests_incomplete": 1}
    hard, _ = mixture(dataset=str(root), layout="codeforces", config="verifiable", where={"rating": {"min": 1600}})
    assert [q.problem.split("\n")[0] for q in hard] == ["Problem 6F"]
    capped, _ = mixture(dataset=str(root), layout="codeforces", config="verifiable", max_tests=1)
    assert len(capped[0].tests) == 1


@pytest.mark.parametrize("write", [taco, apps], ids=["taco", "apps"])
def test_taco_and_apps_map_stdin_and_call_based_tests(tmp_path, write):
    rows = [
        taco_row("Read n and print n squared.", {"inputs": ["3\n", "4\n"], "outputs": ["9\n", "16\n"]}),
        taco_row("Return the sum of a list.", {"fn_name": "total", "inputs": [[[1, 2, 3]], [[]]], "outputs": [[6], [0]]},
                 starter="def total(xs):\n    "),
        taco_row("Broken row.", {"inputs": ["1"]}),
    ]
    root = write(tmp_path / write.__name__, rows)
    config = "ALL" if write is taco else None
    problems, report = mixture(dataset=str(root), layout=write.__name__, config=config)
    stdin, call = problems
    assert [(t.input, t.output, t.fn_name) for t in stdin.tests] == [("3\n", "9\n", None), ("4\n", "16\n", None)]
    assert [(json.loads(t.input), json.loads(t.output), t.fn_name) for t in call.tests] == \
        [([[1, 2, 3]], [6], "total"), ([[]], [0], "total")]
    assert "```python\ndef total(xs):" in call.problem  # the starter code is part of the problem
    assert "`total`" in user_prompt(call) and "standard input" in user_prompt(stdin)
    assert report["sources"][0]["skipped"] == {"no_tests": 1}
    if write is taco:
        assert stdin.time_limit_s == 1.0 and stdin.memory_mb == 256


def test_gpqa_layout_letters_the_shuffled_options(tmp_path):
    root = gpqa(tmp_path / "gpqa", [(f"Which noble gas is number {i}?", "Argon", "Oxygen", "Nitrogen", "Hydrogen")
                                    for i in range(8)])
    problems, _ = mixture(dataset=str(root), layout="gpqa", config="gpqa_main")
    assert len(problems) == 8 and {p.domain for p in problems} == {"choice"}
    for p in problems:
        assert p.choices[ord(p.answer) - ord("A")] == "Argon" and f"{p.answer}) Argon" in p.problem
        assert is_correct(f"<think>noble</think> \\boxed{{{p.answer}}}", "choice", p.answer, p.choices)
    assert len({p.answer for p in problems}) > 1  # not always A
    again, _ = mixture(dataset=str(root), layout="gpqa", config="gpqa_main")
    assert [p.answer for p in again] == [p.answer for p in problems]
    assert "letter of the correct option" in user_prompt(problems[0])


def test_choice_layout_reads_arc_and_mmlu(tmp_path):
    root = arc(tmp_path / "ai2_arc", [
        {"id": "q1", "question": "Which is a mammal?", "choices": {"text": ["Shark", "Whale", "Trout"],
                                                                    "label": ["A", "B", "C"]}, "answerKey": "B"},
        {"id": "q2", "question": "No answer key?", "choices": {"text": ["x", "y"], "label": ["A", "B"]},
         "answerKey": "Z"},
    ])
    problems, report = mixture(dataset=str(root), layout="choice", config="ARC-Challenge")
    assert [(p.answer, p.choices) for p in problems] == [("B", ["Shark", "Whale", "Trout"])]
    assert "B) Whale" in problems[0].problem and report["sources"][0]["skipped"] == {"no_answer": 1}

    root = mmlu(tmp_path / "mmlu", [{"question": "2+2?", "subject": "math", "choices": ["3", "4", "5", "6"],
                                     "answer": 1}])
    problems, _ = mixture(dataset=str(root), layout="choice", config="all", split="test")
    assert problems[0].answer == "B" and problems[0].choices[1] == "4"


def test_files_of_each_type_load_through_the_packaged_builders(tmp_path):
    from hub_layouts import parquet

    rows = [numina_row("What is $2+5$?", "7"), numina_row("What is $9-4$?", "5")]
    parquet(tmp_path / "part-0.parquet", rows[:1])
    parquet(tmp_path / "part-1.parquet", rows[1:])
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_glob, _ = mixture(dataset=str(tmp_path / "part-*.parquet"), layout="numina")
    by_jsonl, _ = mixture(dataset=str(tmp_path / "rows.jsonl"), layout="numina")
    streamed, _ = mixture(dataset=str(tmp_path / "rows.jsonl"), layout="numina", streaming=True)
    assert {p.answer for p in by_glob} == {p.answer for p in by_jsonl} == {p.answer for p in streamed} == {"7", "5"}
    with pytest.raises(DistillError, match="one type"):
        (tmp_path / "odd.csv").write_text("a\n1\n")
        sources.load(str(tmp_path / "*.*"), None, "train", False)


def test_a_missing_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(DistillError, match="cannot read .*set `dataset: DIR`"):
        mixture(dataset=str(tmp_path / "nowhere"), layout="numina")
