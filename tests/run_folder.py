"""A run folder as the stages leave it, for the report and compare tests: the filter's files come
from the real filter (math-verify judging real R1-form traces); the other files are written in the
formats the stages write (stages.json, train_summary.json, eval/*.json, export manifest)."""

from __future__ import annotations

import json
from pathlib import Path

from distill.filter import judging as trace_filter
from distill.recipe import FilterCfg
from distill.records import write_json, write_jsonl


def make_run(root: Path, name: str = "demo", student_pass: float = 0.3, losses=(2.1, 1.4, 0.9, 0.6)) -> Path:
    run = root / "data" / "runs" / name
    problems = [{"id": f"p{i}", "problem": f"What is {i} + 2?", "answer": str(i + 2), "split": "train"}
                for i in range(5)]
    write_jsonl(run / "problems.jsonl", problems)
    traces = []
    for p in problems:
        i = int(p["id"][1:])
        for k, (text, tokens) in enumerate([
            (f"<think>\n{i} + 2 = {i + 2}\n</think>\n\n\\boxed{{{i + 2}}}", 12 + i),   # right
            (f"<think>\n{i} + 2 = {i + 3}\n</think>\n\n\\boxed{{{i + 3}}}", 20 + 2 * i),  # wrong_answer
            (f"<think>\n{i} plus two is", 30 + i),                                     # unclosed_think
        ]):
            traces.append({"problem_id": p["id"], "sample_index": k, "problem": p["problem"], "answer": p["answer"],
                           "teacher": "t", "completion": text, "finish_reason": "stop", "completion_tokens": tokens})
    write_jsonl(run / "traces.jsonl", traces)
    trace_filter.run(run / "traces.jsonl", run / "filter", FilterCfg())
    write_json(run / "train_summary.json", {"mode": "full", "steps": 8, "losses": list(losses), "eval_loss": 0.75,
                                                  "data": {"examples": 12, "kept": 10, "dropped_over_max_length": 2,
                                                           "eval_examples": 1}})
    (run / "recipe.yaml").write_text(f"name: {name}\ntrain:\n  logging_steps: 2\nexport:\n  name: null\n")
    write_json(run / "stages.json", {
        "problems": {"key": "a", "done": True, "seconds": 0.1, "problems": 5},
        "sample": {"key": "b", "done": True, "seconds": 120.0, "sampled": 15, "cost_usd": 0.42},
        "filter": {"key": "c", "done": True, "seconds": 0.5},
        "train": {"key": "d", "done": True, "seconds": 60.0},
        "eval": {"key": "e", "done": True, "seconds": 30.0},
        "export": {"key": "f", "done": True, "seconds": 45.0}})
    summary = {"problems": 40, "n": 1, "closed_think_rate": 0.8, "mean_completion_tokens": 61.0}
    write_json(run / "eval" / "results.json", {
        "base": {**summary, "model": "base", "pass@1": 0.1, "pass@1_se": 0.0474},  # sqrt(.1 * .9 / 40)
        "student": {**summary, "model": "student", "pass@1": student_pass, "truncation_rate": 0.05,
                    "mean_thinking_tokens": 40.5,
                    "pass@1_se": round((student_pass * (1 - student_pass) / 40) ** 0.5, 4)}})
    write_json(run / "eval" / "budgets.json", {"model": "student", "answer_tokens": 64, "points": [
        {"budget": 16, "pass@1": 0.1, "mean_thinking_tokens": 15.5, "forced_rate": 0.9},
        {"budget": 32, "pass@1": 0.2, "mean_thinking_tokens": 27.0, "forced_rate": 0.4},
        {"budget": 64, "pass@1": student_pass, "mean_thinking_tokens": 40.0, "forced_rate": 0.1}]})
    export = root / "export" / name
    export.mkdir(parents=True, exist_ok=True)
    (export / "manifest.json").write_text(json.dumps({"name": name, "files": [
        {"file": f"{name}-F16.gguf", "quant": "F16", "bytes": 10, "sha256": "0", "pass@1": student_pass},
        {"file": f"{name}-Q4_K_M.gguf", "quant": "Q4_K_M", "bytes": 4, "sha256": "1", "pass@1": 0.25,
         "pass@1_se": 0.0685, "pass@1_vs_f16": -0.05, "pass@1_vs_f16_se": 0.0345}]}))
    return run
