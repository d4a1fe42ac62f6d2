"""The whole factory on a tiny student, with a stand-in R1 endpoint as teacher (no remote API here)."""

import json
import subprocess
import sys

from conftest import MICRO_RECIPE
from standin import StandInR1

from distill import pipeline
from distill.problems.bundled import generate_bundled
from distill.recipe import load_recipe
from distill.records import write_jsonl


def test_run_end_to_end_then_skip_unchanged_stages(tmp_path, tiny_llama_dir):
    problems = generate_bundled(per_kind=4)
    write_jsonl(tmp_path / "p.jsonl", problems)
    answers = {p.problem: p.answer for p in problems}
    with StandInR1(answers) as server:
        (tmp_path / "micro.yaml").write_text(MICRO_RECIPE.format(student=tiny_llama_dir, url=server.url,
                                                                 problems=tmp_path / "p.jsonl"))
        recipe = load_recipe(tmp_path / "micro.yaml")
        ledger = pipeline.run(recipe)
        assert set(ledger) == set(pipeline.STAGES) and all(v["done"] for v in ledger.values())
        # The stand-in answers both samples of a problem with the same text: one of each is a duplicate.
        assert ledger["sample"]["sampled"] == 8 and ledger["filter"]["accepted"] == 4
        manifest = json.loads((tmp_path / "export/micro/manifest.json").read_text())
        assert [f["quant"] for f in manifest["files"]] == ["F16", "Q8_0"]
        assert manifest["recipe"]["sha256"] == recipe.sha256()
        results = json.loads((tmp_path / "data/runs/micro/eval/results.json").read_text())
        assert set(results) == {"base", "student"}
        # eval.base_limit: the base on 2 of the 3 eval problems, and the report's table says so.
        assert (results["base"]["problems"], results["student"]["problems"]) == (2, 3)
        assert "| base | base | 2 |" in (tmp_path / "data/runs/micro/report.md").read_text()
        curve = json.loads((tmp_path / "data/runs/micro/eval/budgets.json").read_text())
        assert curve["problems"] == 2 and len(curve["points"]) == 1  # eval.budget_limit: 2 of the 3 eval problems
        requests = server.requests["ok"]

        again = pipeline.run(load_recipe(tmp_path / "micro.yaml"))
        assert again == ledger  # nothing redone
        assert server.requests["ok"] == requests

        # A new filter setting reruns the filter; identical accepted traces leave training alone.
        pipeline.run(load_recipe(tmp_path / "micro.yaml", ["filter.max_completion_tokens=1000"]))
        after = json.loads((tmp_path / "data/runs/micro/stages.json").read_text())
        assert after["filter"]["key"] != ledger["filter"]["key"]
        assert after["train"] == ledger["train"]

    # The exported file answers through `distill chat`.
    gguf = tmp_path / "export/micro/micro-Q8_0.gguf"
    proc = subprocess.run([sys.executable, "-m", "distill", "chat", str(gguf), "-p", "What is 2 + 2?",
                           "--hide-thinking", "--think-budget", "4", "--max-tokens", "12"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "thought for" in proc.stdout


def test_unreachable_teacher_is_one_clear_error(tmp_path, tiny_llama_dir):
    write_jsonl(tmp_path / "p.jsonl", generate_bundled(per_kind=2))
    (tmp_path / "micro.yaml").write_text(MICRO_RECIPE.format(student=tiny_llama_dir, url="http://127.0.0.1:9/v1",
                                                             problems=tmp_path / "p.jsonl"))
    proc = subprocess.run([sys.executable, "-m", "distill", "run", str(tmp_path / "micro.yaml"), "--to", "sample",
                           "--set", "sampling.max_retries=0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "samples failed" in proc.stderr and "Traceback" not in proc.stderr


STAR_RECIPE = """
name: star
student: {{model: {student}}}
teacher: {{backend: openai, model: stand-in-r1, base_urls: [{url}]}}
problems: {{path: {problems}, split: train, limit: 2}}
sampling: {{n: 2, max_tokens: 40, temperature: 0.0, max_concurrent: 4, timeout_s: 60, max_retries: 1}}
filter: {{decontaminate: []}}
train: {{mode: full, learning_rate: 1.0e-3, max_steps: {steps}, per_device_train_batch_size: 2, max_length: 64,
        logging_steps: 5, lr_scheduler_type: constant, eval_fraction: 0}}
rounds: {{count: 2, limit: 4, n: 1}}
eval: {{problems: {problems}, split: eval, max_tokens: 40, temperature: 0.0, batch_size: 2, served: true}}
"""


# Two students of 120 steps each: 60 s measured here on 2 quiet cores (8 min at load 9).
def test_two_star_rounds_train_round_2_on_the_union(tmp_path, tiny_llama_dir, monkeypatch):
    """Round 1 learns the teacher's traces for two problems whose answer is 4; served by llama-server,
    that student then answers 4 (greedily, zero-shot) to the two train problems the teacher never saw,
    which the filter accepts; round 2 must train on round 1's traces plus those, each once."""
    from distill.filter.dedup import normalise
    from distill.records import Problem, Trace, read_records

    questions = ["What is 2 + 2?", "What is 1 + 3?", "What is 3 + 1?", "What is 0 + 4?"]
    problems = [Problem(id=f"t{i}", problem=q, answer="4", split="train") for i, q in enumerate(questions)]
    problems += [Problem(id="e0", problem="What is 4 + 0?", answer="4", split="eval"),
                 Problem(id="e1", problem="What is 5 + 3?", answer="8", split="eval")]
    write_jsonl(tmp_path / "p.jsonl", problems)
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))  # where served students are converted
    # A short fixed reasoning: the 2-layer student learns the whole trace in ~120 steps (loss ~0.2).
    with StandInR1({p.problem: p.answer for p in problems}, reasoning="four") as server:
        (tmp_path / "star.yaml").write_text(STAR_RECIPE.format(student=tiny_llama_dir, url=server.url,
                                                               problems=tmp_path / "p.jsonl", steps=120))
        ledger = pipeline.run(load_recipe(tmp_path / "star.yaml"), to_stage="eval")
        assert server.requests["ok"] == 4  # the teacher sampled round 1 only: 2 problems x n=2

    run = tmp_path / "data/runs/star"

    def keys(path):
        return {(t.problem_id, normalise(t.completion)) for t in read_records(path, Trace)}

    round1, new = keys(run / "filter/accepted.jsonl"), keys(run / "rounds/2/filter/accepted.jsonl")
    trained = [t for t in read_records(run / "rounds/2/train.jsonl", Trace)]
    assert {pid for pid, _ in round1} == {"t0", "t1"}
    assert {"t2", "t3"} <= {pid for pid, _ in new}  # the student's own correct traces, on unseen problems
    assert {(t.problem_id, normalise(t.completion)) for t in trained} == round1 | new  # the union...
    assert len(trained) == len(round1 | new)  # ...each trace once
    summary = json.loads((run / "rounds/2/train_summary.json").read_text())
    assert summary["data"]["kept"] == len(trained)  # and the round-2 student trained on exactly that

    rows = json.loads((run / "rounds.json").read_text())
    assert [(r["round"], r["trained_on"]) for r in rows] == [(1, len(round1)), (2, len(trained))]
    assert rows[0]["eval"]["problems"] == 2 and "pass@1" in rows[0]["eval"]
    assert ledger["rounds"]["trained_on"] == [len(round1), len(trained)]
    results = json.loads((run / "eval/results.json").read_text())
    assert results["student"]["problems"] == 2  # the eval stage scored the last round's student
    served = [json.loads(f.read_text())["source"] for f in (tmp_path / "cache/served").glob("*.source.json")]
    assert any(d.endswith("rounds/2/student") for d in served)  # converted for the eval stage's server
    # The budget curve is the eval stage's alone: asking for one redoes the eval, never the rounds' training.
    again = pipeline.run(load_recipe(tmp_path / "star.yaml", ["eval.think_budgets=[4]"]), to_stage="eval")
    assert again["rounds"] == ledger["rounds"] and again["eval"]["key"] != ledger["eval"]["key"]
    assert "## STaR rounds" in (run / "report.md").read_text()
