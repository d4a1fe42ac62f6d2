"""A 2-source recipe end to end on CPU: `distill data` previews it, then sample -> filter run on the
embedded teacher (SmolLM2-135M through llama.cpp), each trace carrying its source's domain and prompt."""

import json
import subprocess
import sys

from hub_layouts import arc, numina, numina_row

from distill import pipeline
from distill.recipe import load_recipe
from distill.records import Trace, load_problems, read_records

WORD = [("Ava", 12, 30), ("Ben", 25, 14), ("Chen", 40, 17), ("Dara", 33, 21), ("Eli", 18, 45)]

RECIPE = """name: mix2
student:
  model: embedded:smollm2-135m-instruct
teacher:
  backend: llamacpp
  model: embedded:smollm2-135m-instruct
  system_prompt: "You are a careful math tutor. Think step by step inside <think> </think>, then give the final answer in \\\\boxed{{}}."
  few_shot: 1
  n_ctx: 1024
problems:
  sources:
    - {{name: word-math, dataset: {math}, layout: numina, weight: 2}}
    - {{name: arc, dataset: {arc}, layout: choice, config: ARC-Challenge, weight: 1}}
  limit: 6
  decontaminate: [{eval_set}]
sampling:
  n: 1
  temperature: 0.5
  max_tokens: 32
  max_concurrent: 2
  timeout_s: 120
filter:
  max_length: 512
  decontaminate: []
train:
  max_length: 512
eval:
  problems: {eval_set}
"""


def write_recipe(tmp_path):
    math = numina(tmp_path / "numina", [numina_row(f"{w} has {a} marbles and gets {b} more. How many marbles "
                                                   f"does {w} have now?", str(a + b)) for w, a, b in WORD])
    choice = arc(tmp_path / "ai2_arc", [
        {"id": f"q{i}", "question": q, "choices": {"text": opts, "label": ["A", "B", "C"]}, "answerKey": key}
        for i, (q, opts, key) in enumerate([("Which is a mammal?", ["Shark", "Whale", "Trout"], "B"),
                                            ("Which is a gas at room temperature?", ["Iron", "Salt", "Argon"], "C"),
                                            ("Which is a planet?", ["Mars", "Moon", "Sun"], "A")])])
    # An eval set that holds one of the math problems word for word: decontamination must drop it.
    eval_set = tmp_path / "eval.jsonl"
    w, a, b = WORD[0]
    eval_set.write_text(json.dumps({"id": "e1", "problem": f"{w} has {a} marbles and gets {b} more. How many "
                                    f"marbles does {w} have now?", "answer": str(a + b), "split": "eval"}) + "\n")
    path = tmp_path / "mix2.yaml"
    path.write_text(RECIPE.format(math=math, arc=choice, eval_set=eval_set))
    return path


def test_data_previews_the_mixture_and_what_decontamination_removes(tmp_path):
    path = write_recipe(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "distill", "data", str(path), "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    math, arc_src = report["sources"]
    assert (math["kept"], arc_src["kept"]) == (4, 2) and report["by_domain"] == {"math": 4, "choice": 2}
    assert math["skipped"] == {f"contaminated:{tmp_path / 'eval.jsonl'}": 1}
    assert math["answer_parse_rate"] == 1.0
    assert "Ava has 12 marbles" in next(iter(math["removed"].values()))[0]
    tokens = report["tokens"]
    assert tokens["counted_with"] == "embedded:smollm2-135m-instruct tokenizer"
    assert tokens["by_domain"]["math"]["problems"] == 4 and tokens["all"]["min"] > 20
    assert report["teacher"] == {"requests": 6, "prompt_tokens": tokens["all"]["total"],
                                 "max_completion_tokens": 6 * 32, "max_cost_usd": None}
    from typer.testing import CliRunner

    from distill.cli import app

    table = CliRunner().invoke(app, ["problems", str(path)], terminal_width=200)  # the verb's other name
    assert table.exit_code == 0, table.output
    assert "word-math" in table.output and "decontamination removed" in table.output


def test_two_sources_sample_and_filter_on_the_embedded_teacher(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path))
    ledger = pipeline.run(recipe, to_stage="filter")
    assert ledger["problems"]["problems"] == 6 and ledger["sample"]["sampled"] == 6
    problems = load_problems(tmp_path / "data/runs/mix2/problems.jsonl")
    assert sorted(p.source for p in problems) == ["arc"] * 2 + ["word-math"] * 4
    traces = [t for t in read_records(tmp_path / "data/runs/mix2/traces.jsonl", Trace)]
    by_problem = {p.id: p for p in problems}
    assert {t.problem_id for t in traces} == set(by_problem)
    assert all(t.domain == by_problem[t.problem_id].domain for t in traces)
    assert {t.choices is not None for t in traces if t.domain == "choice"} == {True}
    report = json.loads((tmp_path / "data/runs/mix2/filter/report.json").read_text())
    assert report["input"] == 6 and report["accepted"] + report["rejected"] == 6
    assert set(report["by_domain"]) == {"math", "choice"}
    # Ids are text hashes: the same recipe reads the same problems again, so a rerun samples nothing.
    again = pipeline.run(load_recipe(tmp_path / "mix2.yaml"), to_stage="filter")
    assert again["sample"] == ledger["sample"]
