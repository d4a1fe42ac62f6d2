import json

import pytest
from standin import StandInR1

from distill import sample
from distill.errors import DistillError
from distill.recipe import load_recipe
from distill.records import Problem, Trace, read_records

PROBLEMS = [Problem(id=f"q{i}", problem=f"What is {i} + {i}?", answer=str(2 * i), split="train") for i in range(5)]
ANSWERS = {p.problem: p.answer for p in PROBLEMS}


def _recipe(tmp_path, url: str, **over):
    text = f"""
name: t
student: {{model: x}}
teacher: {{backend: openai, model: stand-in-r1, base_urls: ["{url}"]}}
problems: {{path: p.jsonl}}
sampling: {{n: 2, max_tokens: 32, max_concurrent: 4, timeout_s: 1.5, max_retries: 4}}
eval: {{problems: p.jsonl}}
"""
    (tmp_path / "r.yaml").write_text(text)
    return load_recipe(tmp_path / "r.yaml", [f"{k}={v}" for k, v in over.items()])


def _keys(path):
    return sorted(r.key for r in read_records(path, Trace))


def test_samples_all_and_resumes_without_duplicates(tmp_path):
    out = tmp_path / "traces.jsonl"
    with StandInR1(ANSWERS, reasoning_field=True) as server:
        recipe = _recipe(tmp_path, server.url)
        first = sample.run(recipe, PROBLEMS[:3], out, show_progress=False)
        assert first["sampled"] == 6 and not first["failed"]
        with open(out, "a") as f:  # a writer killed mid-line
            f.write('{"problem_id": "q3", "sample_ind')
        second = sample.run(recipe, PROBLEMS, out, show_progress=False)
        assert second["already_done"] == 6 and second["sampled"] == 4
        assert server.requests["ok"] == 10
    assert _keys(out) == [(f"q{i}", j) for i in range(5) for j in range(2)]
    rec = next(read_records(out, Trace))
    assert rec.completion.startswith("<think>\n") and "</think>" in rec.completion  # reasoning_content merged


def test_faults_are_retried_and_exhausted_ones_listed(tmp_path):
    out = tmp_path / "traces.jsonl"
    faults = ["500", "429", "malformed", "reset", "hang", "ok", "500"]
    with StandInR1(ANSWERS, faults=faults, hang_s=3) as server:
        recipe = _recipe(tmp_path, server.url)
        summary = sample.run(recipe, PROBLEMS[:3], out, show_progress=False)
    assert summary["sampled"] == 6 and not summary["failed"]
    assert {"server_error", "rate_limited", "malformed_response"} <= set(summary["errors_by_kind"])
    assert _keys(out) == [(f"q{i}", j) for i in range(3) for j in range(2)]

    with StandInR1(ANSWERS, faults=["500"] * 100) as server:
        recipe = _recipe(tmp_path, server.url, **{"sampling.max_retries": 1})
        summary = sample.run(recipe, PROBLEMS[3:4], tmp_path / "t2.jsonl", show_progress=False)
    assert summary["sampled"] == 0 and len(summary["failed"]) == 2
    assert summary["failed"][0]["kind"] == "server_error"


def test_api_key_comes_from_env_and_never_reaches_traces(tmp_path, monkeypatch):
    from distill.teacher.openai import OpenAITeacher

    with pytest.raises(DistillError, match="SECRET_KEY_VAR"):
        OpenAITeacher("m", ["http://127.0.0.1:1/v1"], "SECRET_KEY_VAR")
    monkeypatch.setenv("SECRET_KEY_VAR", "sk-very-secret")
    out = tmp_path / "traces.jsonl"
    with StandInR1(ANSWERS) as server:
        recipe = _recipe(tmp_path, server.url, **{"teacher.api_key_env": "SECRET_KEY_VAR"})
        sample.run(recipe, PROBLEMS[:1], out, show_progress=False)
    assert "sk-very-secret" not in out.read_text()
    assert "sk-very-secret" not in (tmp_path / "sample_summary.json").read_text()


def test_real_llama_cpp_server_on_loopback(tmp_path, llama_server):
    """The same HTTP client against llama.cpp's OpenAI-compatible server with the embedded model."""
    recipe = _recipe(tmp_path, llama_server.url, **{"teacher.model": "embedded:smollm2-135m-instruct",
                                                     "teacher.few_shot": 2, "sampling.timeout_s": 60,
                                                     "sampling.max_concurrent": 1})
    out = tmp_path / "traces.jsonl"
    summary = sample.run(recipe, PROBLEMS[:2], out, show_progress=False)
    assert summary["sampled"] == 4 and summary["completion_tokens"] > 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["teacher"] == "embedded:smollm2-135m-instruct" and r["completion"] for r in rows)
    assert all(r["finish_reason"] in ("stop", "length") for r in rows)
