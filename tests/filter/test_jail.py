"""The jail's edges: refusing where it cannot start, the explicit unsafe-local opt-out, and
workers that hold no secrets."""

import json
import os

import pytest
from pydantic import ValidationError

from distill.filter import jail
from distill.filter import judging as trace_filter
from distill.filter.sandbox import CodeLimits, judge_code
from distill.filter.verify import check_answer
from distill.recipe import FilterCfg

PROGRAM = "print(sum(map(int, input().split())))"
TESTS = [{"input": "2 3\n", "output": "5\n"}]


@pytest.fixture
def no_jail(monkeypatch):
    """A machine where bwrap cannot set up the jail. Stand-in for a kernel or container without
    user namespaces: a real binary that fails the way bwrap does there (exit 1)."""
    monkeypatch.setattr(jail, "bwrap", lambda: "/bin/false")
    jail.unavailable.cache_clear()
    yield
    jail.unavailable.cache_clear()


def _rows() -> list[dict]:
    code = {"problem_id": "c1", "sample_index": 0, "problem": "Read two integers and print their sum.", "answer": "",
            "domain": "code", "teacher": "r1", "finish_reason": "stop", "tests": TESTS,
            "completion": f"<think>\nAdd.\n</think>\n\n```python\n{PROGRAM}\n```"}
    math = {"problem_id": "m1", "sample_index": 0, "problem": "What is 2+3?", "answer": "5", "domain": "math",
            "teacher": "r1", "finish_reason": "stop", "completion": "2+3=5\n</think>\n\n\\boxed{5}"}
    return [code, math]


def test_no_jail_refuses_code_and_judges_math(no_jail, tmp_path):
    why = jail.unavailable()
    assert why and "/bin/false failed" in why and "filter.code_sandbox: unsafe-local" in why
    assert check_answer("code", "", PROGRAM, tests=TESTS) == ["code_jail_unavailable"]
    src = tmp_path / "traces.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    rep = trace_filter.run(src, tmp_path / "out", FilterCfg(decontaminate=[]), workers=1, progress=False)
    assert rep["by_reason"] == {"code_jail_unavailable": 1} and rep["accepted"] == 1  # math went on
    assert rep["sandbox"]["in_force"] is False and "unsafe-local" in rep["sandbox"]["summary"]
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["sandbox"]["summary"] == why


def test_cli_prints_the_refusal_once(no_jail, tmp_path):
    from typer.testing import CliRunner

    from distill.cli import app

    src = tmp_path / "traces.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    res = CliRunner().invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert res.output.count("code judging refused") == 1 and "filter.code_sandbox: unsafe-local" in res.output


def test_missing_bwrap_says_how_to_install(monkeypatch):
    monkeypatch.setattr(jail, "bwrap", lambda: None)
    jail.unavailable.cache_clear()
    try:
        assert "make setup" in jail.unavailable() and "bubblewrap" in jail.unavailable()
    finally:
        jail.unavailable.cache_clear()


def test_unsafe_local_is_an_explicit_opt_out(no_jail, monkeypatch):
    made = []
    real = jail.unsafe_work_dir
    monkeypatch.setattr(jail, "unsafe_work_dir", lambda: made.append(real()) or made[-1])
    limits = CodeLimits(time_limit_s=2, sandbox="unsafe-local")
    assert judge_code(PROGRAM, "python", TESTS, limits).passed  # runs although no jail can start
    assert not judge_code("print(6)", "python", TESTS, limits).passed
    assert len(made) == 2 and not any(p.exists() for p in made)  # each work dir is removed
    desc = jail.describe("unsafe-local")
    assert desc["in_force"] is False and desc["summary"].startswith("NO JAIL")


def test_code_sandbox_setting_is_checked():
    assert FilterCfg(code_sandbox="unsafe-local").code_sandbox == "unsafe-local"
    with pytest.raises(ValidationError, match="code_sandbox"):
        FilterCfg(code_sandbox="docker")


def test_filter_workers_start_without_keys_or_tokens(monkeypatch):
    before = dict(os.environ)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("DISTILL_TEACHER_PASSWORD", "pw")
    try:
        trace_filter._init_worker(FilterCfg().model_dump_json())  # what each pool worker runs first
        assert not {"HF_TOKEN", "OPENAI_API_KEY", "DISTILL_TEACHER_PASSWORD"} & set(os.environ)
        assert os.environ.get("PATH") == before.get("PATH")  # the rest is left alone
    finally:
        for name, value in before.items():
            os.environ.setdefault(name, value)
