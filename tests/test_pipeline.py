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
