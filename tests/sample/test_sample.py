"""The sampler against the fault-injecting stand-in endpoint and a real llama.cpp server on loopback."""

import json
import socket
import time
from collections import Counter

import pytest
from standin import StandInR1

from distill.errors import DistillError
from distill.recipe import load_recipe
from distill.records import BadLine, Problem, Trace, read_records
from distill.sample import sampler as sample
from distill.sample.teacher.base import TeacherError
from distill.sample.teacher.openai import retry_after_s

PROBLEMS = [Problem(id=f"q{i}", problem=f"What is {i} + {i}?", answer=str(2 * i), split="train") for i in range(12)]
ANSWERS = {p.problem: p.answer for p in PROBLEMS}


def _recipe(tmp_path, urls, **over):
    urls = [urls] if isinstance(urls, str) else urls
    text = f"""
name: t
student: {{model: x}}
teacher: {{backend: openai, model: stand-in-r1, base_urls: {json.dumps(urls)}}}
problems: {{path: p.jsonl}}
sampling: {{n: 2, max_tokens: 32, max_concurrent: 4, timeout_s: 1.5, max_retries: 4}}
eval: {{problems: p.jsonl}}
"""
    (tmp_path / "r.yaml").write_text(text)
    return load_recipe(tmp_path / "r.yaml", [f"{k}={v}" for k, v in over.items()])


def _keys(path):
    recs = list(read_records(path, Trace))
    assert not [r for r in recs if isinstance(r, BadLine)], "a torn or bad record was read as a line"
    keys = [r.key for r in recs]
    assert len(keys) == len(set(keys)), f"duplicated samples: {[k for k, c in Counter(keys).items() if c > 1]}"
    return sorted(keys)


def _expected(problems, n=2):
    return sorted((p.id, j) for p in problems for j in range(n))


def test_samples_all_and_resumes_without_duplicates(tmp_path):
    out = tmp_path / "traces.jsonl"
    with StandInR1(ANSWERS, reasoning_field=True) as server:
        recipe = _recipe(tmp_path, server.url)
        first = sample.run(recipe, PROBLEMS[:3], out, show_progress=False)
        assert first["sampled"] == 6 and not first["failed"]
        with open(out, "a") as f:  # a writer killed mid-line
            f.write('{"problem_id": "q3", "sample_ind')
        second = sample.run(recipe, PROBLEMS[:5], out, show_progress=False)
        assert second["already_done"] == 6 and second["sampled"] == 4
        assert server.requests["ok"] == 10
    assert _keys(out) == _expected(PROBLEMS[:5])
    rec = next(read_records(out, Trace))
    assert rec.completion.startswith("<think>\n") and "</think>" in rec.completion  # reasoning_content merged
    assert rec.prompt_tokens == 20 and rec.completion_tokens == 30
    # The reasoning is stored once, inside the completion, not again in `reasoning_content`.
    first_line = out.read_text().splitlines()[0]
    assert rec.reasoning_content is None and first_line.count("Working it out step by step") == 1
    assert server.bodies[0]["stream"] is True  # streamed, as the idle timeout needs


def test_every_fault_kind_ends_sampled_or_listed_failed(tmp_path):
    """500s, 503s, 429 + Retry-After, hangs past the timeout, torn JSON, JSON without choices and
    TCP resets, spread over 24 samples with 4 in flight: each ends in the file or in the summary."""
    out = tmp_path / "traces.jsonl"
    faults = ["500", "429", "malformed", "reset", "hang", "ok", "503", "nochoices", "500", "500",
              "reset", "429", "malformed", "hang", "ok", "500", "500", "500", "500", "500"]
    with StandInR1(ANSWERS, faults=faults, hang_s=2.5) as server:
        recipe = _recipe(tmp_path, server.url, **{"sampling.timeout_s": 1.0, "sampling.max_retries": 3})
        summary = sample.run(recipe, PROBLEMS, out, show_progress=False)
    written = _keys(out)
    failed = sorted((f["problem_id"], f["sample_index"]) for f in summary["failed"])
    assert sorted(written + failed) == _expected(PROBLEMS)  # every sample exactly once, one way or the other
    assert summary["sampled"] == len(written) and not set(written) & set(failed)
    assert {"server_error", "rate_limited", "malformed_response", "connection", "timeout"} <= set(
        summary["errors_by_kind"])
    assert summary["failed_problems"] == sorted({k[0] for k in failed})
    # Which samples draw the faults depends on timing; any that failed used up every attempt.
    assert all(f["attempts"] == 4 and f["kind"] in TeacherError.RETRYABLE for f in summary["failed"])


def test_exhausted_samples_are_listed_and_a_rerun_retries_only_those(tmp_path):
    out = tmp_path / "traces.jsonl"
    with StandInR1(ANSWERS, faults=["500", "ok"] * 3) as server:
        recipe = _recipe(tmp_path, server.url, **{"sampling.max_retries": 0, "sampling.max_concurrent": 1})
        first = sample.run(recipe, PROBLEMS[:3], out, show_progress=False)
    assert first["sampled"] == 3 and len(first["failed"]) == 3
    assert first["failures_by_kind"] == {"server_error": 3}
    with StandInR1(ANSWERS) as server:
        second = sample.run(_recipe(tmp_path, server.url), PROBLEMS[:3], out, show_progress=False)
        assert server.posts == 3  # only the three that failed were asked again
    assert second["retried_previous_failures"] == 3 and not second["failed"]
    assert _keys(out) == _expected(PROBLEMS[:3])


def test_retry_after_is_honoured():
    e = TeacherError("rate_limited", "429", retry_after=2.0)
    assert all(2.0 <= sample.backoff_s(0, e) <= 2.2 for _ in range(20))
    assert retry_after_s("3") == 3.0 and retry_after_s("soon") is None
    assert 50 < retry_after_s(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))) <= 61
    plain = TeacherError("server_error", "500")
    assert all(0 <= sample.backoff_s(3, plain) <= 4.0 for _ in range(20))  # 0.5 * 2**3, full jitter


def test_retry_after_holds_back_every_worker(tmp_path):
    """A 429 with Retry-After pauses the whole pool (backpressure), not only the request that got it."""
    with StandInR1(ANSWERS, faults=["429"], retry_after="1", delay_s=0.05) as server:
        recipe = _recipe(tmp_path, server.url, **{"sampling.n": 1, "sampling.max_concurrent": 1})
        start = time.monotonic()
        summary = sample.run(recipe, PROBLEMS[:3], tmp_path / "t.jsonl", show_progress=False)
    assert summary["sampled"] == 3 and time.monotonic() - start >= 1.0  # waited out the server's Retry-After
    with StandInR1(ANSWERS, faults=["429"], retry_after="1", delay_s=0.1) as server:
        # Without the pause the 11 other jobs would go out at 0, 0.1, 0.2 and 0.3 s.
        recipe = _recipe(tmp_path, server.url, **{"sampling.n": 1, "sampling.max_concurrent": 4})
        sample.run(recipe, PROBLEMS, tmp_path / "t2.jsonl", show_progress=False)
        assert server.requests["ok"] == 12 and server.requests["429"] == 1
        t429 = next(t for t, fault in server.log if fault == "429")
        # Workers that got their answer in the instant before the 429 arrived may send once more;
        # after that nobody sends until the server's second is over.
        assert not [t for t, _ in server.log if t429 + 0.25 < t < t429 + 0.95]
        assert [t for t, _ in server.log if t >= t429 + 0.95]


def test_concurrency_is_bounded_and_used(tmp_path):
    with StandInR1(ANSWERS, delay_s=0.2) as server:
        recipe = _recipe(tmp_path, server.url, **{"sampling.max_concurrent": 5})
        summary = sample.run(recipe, PROBLEMS, tmp_path / "t.jsonl", show_progress=False)
    assert summary["sampled"] == 24
    assert server.max_in_flight == 5  # never more than max_concurrent, and the pool is kept full


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # closed again: connections are refused


def test_several_base_urls_share_the_work_and_survive_a_dead_one(tmp_path):
    out = tmp_path / "traces.jsonl"
    # Each answer takes 0.1 s, so which server is less loaded depends on requests in flight, not on
    # which stand-in thread a busy machine happens to schedule first.
    with StandInR1(ANSWERS, delay_s=0.1) as a, StandInR1(ANSWERS, delay_s=0.1) as b:
        summary = sample.run(_recipe(tmp_path, [a.url, b.url]), PROBLEMS, out, show_progress=False)
        assert a.requests["ok"] >= 6 and b.requests["ok"] >= 6  # both servers share the work (least loaded first)
        assert summary["requests_by_url"] == {a.url: a.requests["ok"], b.url: b.requests["ok"]}
        dead = _dead_url()
        out2 = tmp_path / "t2.jsonl"
        summary = sample.run(_recipe(tmp_path, [dead, a.url, b.url], **{"sampling.max_retries": 6}), PROBLEMS,
                             out2, show_progress=False)
    assert _keys(out2) == _expected(PROBLEMS) and not summary["failed"]
    # The preflight found the dead URL unreachable and rested it: the live ones took its share.
    assert summary["urls"][dead]["ok"] == 0 and summary["urls"][a.url]["ok"] + summary["urls"][b.url]["ok"] == 24


def test_urls_from_one_env_var_name_several_servers(tmp_path, monkeypatch):
    with StandInR1(ANSWERS) as a, StandInR1(ANSWERS) as b:
        monkeypatch.setenv("DISTILL_TEACHER_URL", f"{a.url}, {b.url}/")  # what scripts/vllm_servers.sh prints
        summary = sample.run(_recipe(tmp_path, "${DISTILL_TEACHER_URL}"), PROBLEMS[:4], tmp_path / "t.jsonl",
                             show_progress=False)
        assert a.posts and b.posts and a.posts + b.posts == 8 and summary["sampled"] == 8
    monkeypatch.delenv("DISTILL_TEACHER_URL")
    with pytest.raises(DistillError, match="set DISTILL_TEACHER_URL"):
        sample.run(_recipe(tmp_path, "${DISTILL_TEACHER_URL}"), PROBLEMS[:1], tmp_path / "t.jsonl")


def test_completions_are_normalised_to_r1_form():
    from distill.r1 import normalise_completion as norm

    assert norm("The answer is 4.", "2 + 2 = 4") == "<think>\n2 + 2 = 4\n</think>\n\nThe answer is 4."
    assert norm("2 + 2 = 4\n</think>\n\n4") == "<think>\n2 + 2 = 4\n</think>\n\n4"  # prefilled <think>
    assert norm("<think>\nx\n</think>\n\n4", "x") == "<think>\nx\n</think>\n\n4"  # never doubled
    assert norm("no thinking at all") == "no thinking at all"


def test_api_key_is_sent_but_never_written_or_shown(tmp_path, monkeypatch, capsys):
    from distill.sample.teacher.openai import OpenAITeacher

    with pytest.raises(DistillError, match="SECRET_KEY_VAR"):
        OpenAITeacher("m", ["http://127.0.0.1:1/v1"], "SECRET_KEY_VAR")
    secret = "sk-very-secret-0123456789"
    monkeypatch.setenv("SECRET_KEY_VAR", secret)
    out = tmp_path / "traces.jsonl"
    with StandInR1(ANSWERS, faults=["400echo", "500", "reset"]) as server:
        recipe = _recipe(tmp_path, server.url, **{"teacher.api_key_env": "SECRET_KEY_VAR"})
        summary = sample.run(recipe, PROBLEMS[:2], out, show_progress=True)
        assert server.seen_auth and all(h == f"Bearer {secret}" for h in server.seen_auth)
    assert summary["failures_by_kind"] == {"client_error": 1}
    assert "***" in summary["failed"][0]["message"]  # the server echoed the key; we redacted it
    assert secret not in repr(OpenAITeacher("m", [server.url], "SECRET_KEY_VAR"))
    with StandInR1(ANSWERS, faults=["401"] * 10) as server:
        recipe = _recipe(tmp_path, server.url, **{"teacher.api_key_env": "SECRET_KEY_VAR",
                                                  "sampling.max_concurrent": 1})
        with pytest.raises(DistillError) as err:
            sample.run(recipe, PROBLEMS[:3], tmp_path / "t2.jsonl", show_progress=True)
        assert server.requests["401"] == 1  # a refused key stops the run instead of burning through jobs
    assert "SECRET_KEY_VAR" in str(err.value) and secret not in str(err.value)
    printed = capsys.readouterr()
    for text in (out.read_text(), (tmp_path / "sample_summary.json").read_text(),
                 (tmp_path / "sample.log").read_text(), printed.out, printed.err):
        assert secret not in text


def test_summary_reports_tokens_cost_and_wall_time(tmp_path):
    with StandInR1(ANSWERS) as server:
        recipe = _recipe(tmp_path, server.url, **{"teacher.price_per_million_input": 0.55,
                                                  "teacher.price_per_million_output": 2.19})
        summary = sample.run(recipe, PROBLEMS[:5], tmp_path / "t.jsonl", show_progress=False)
    assert summary["prompt_tokens"] == 200 and summary["completion_tokens"] == 300
    assert summary["cost_usd"] == pytest.approx((200 * 0.55 + 300 * 2.19) / 1e6)
    assert summary["wall_s"] > 0 and summary["samples_per_s"] > 0
    on_disk = json.loads((tmp_path / "sample_summary.json").read_text())
    assert on_disk["cost_usd"] == summary["cost_usd"]


def test_real_llama_cpp_server_on_loopback(tmp_path, llama_server):
    """The same HTTP client against llama.cpp's OpenAI-compatible server with the embedded model."""
    recipe = _recipe(tmp_path, llama_server.url, **{"teacher.model": "embedded:smollm2-135m-instruct",
                                                     "sampling.timeout_s": 120, "sampling.max_tokens": 12,
                                                     "sampling.max_concurrent": 2})
    out = tmp_path / "traces.jsonl"
    summary = sample.run(recipe, PROBLEMS[:1], out, show_progress=False)
    assert summary["sampled"] == 2 and summary["completion_tokens"] > 0
    assert summary["requests_by_url"] == {llama_server.url: 2}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["teacher"] == "embedded:smollm2-135m-instruct" and r["completion"] for r in rows)
    assert all(r["finish_reason"] in ("stop", "length") and 0 < r["completion_tokens"] <= 12 for r in rows)
    assert _keys(out) == _expected(PROBLEMS[:1])
