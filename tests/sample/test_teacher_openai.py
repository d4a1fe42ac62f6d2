"""The OpenAI-compatible teacher against stand-in endpoints: a hung stream abandoned after the idle
timeout, the least-loaded healthy URL, the wire format, one writer per traces file and progress
lines when stderr is a log, not a terminal."""

import json
import re
import subprocess
import sys
import time

import pytest
from standin import StandInR1

from distill.errors import DistillError
from distill.recipe import load_recipe
from distill.records import BadLine, Problem, Trace, read_records
from distill.sample import sampler as sample
from distill.sample.teacher.wire import StreamAccumulator, error_for_status

PROBLEMS = [Problem(id=f"q{i}", problem=f"What is {i} + {i}?", answer=str(2 * i), split="train") for i in range(12)]
ANSWERS = {p.problem: p.answer for p in PROBLEMS}


def _recipe(tmp_path, urls, **over):
    (tmp_path / "r.yaml").write_text(f"""
name: t
student: {{model: x}}
teacher: {{backend: openai, model: stand-in-r1, base_urls: {json.dumps(urls)}}}
problems: {{path: p.jsonl}}
sampling: {{n: 1, max_tokens: 32, max_concurrent: 1, timeout_s: 60, max_retries: 3}}
eval: {{problems: p.jsonl}}
""")
    return load_recipe(tmp_path / "r.yaml", [f"{k}={v}" for k, v in over.items()])


def test_a_hung_stream_is_abandoned_after_the_idle_timeout_and_lands_elsewhere(tmp_path):
    """The first URL sends a token, then nothing for 30 s (a hung server, not a refusing one); with a
    0.5 s idle timeout the sample is retried on the other URL long before `timeout_s` (60 s)."""
    with StandInR1(ANSWERS, faults=["stall"], hang_s=30) as hung, StandInR1(ANSWERS) as ok:
        recipe = _recipe(tmp_path, [hung.url, ok.url], **{"sampling.idle_timeout_s": 0.5})
        start = time.monotonic()
        summary = sample.run(recipe, PROBLEMS[:1], tmp_path / "t.jsonl", show_progress=False)
        took = time.monotonic() - start
        assert hung.posts == 1 and ok.posts == 1
    assert summary["sampled"] == 1 and not summary["failed"] and took < 10
    assert summary["urls"][hung.url] == {"requests": 1, "ok": 0, "errors": {"idle_timeout": 1}, "completion_tokens": 0,
                                         "mean_request_s": pytest.approx(0.5, abs=0.4)}
    assert summary["urls"][ok.url]["ok"] == 1 and summary["urls"][ok.url]["completion_tokens"] == 30
    (trace,) = [r for r in read_records(tmp_path / "t.jsonl", Trace)]
    assert trace.completion.endswith("\\boxed{0}.")


def test_requests_go_to_the_least_loaded_url(tmp_path):
    """A slow server keeps its one request while the fast one serves the rest (round-robin would
    have sent it half of them)."""
    with StandInR1(ANSWERS, delay_s=1.0) as slow, StandInR1(ANSWERS) as fast:
        recipe = _recipe(tmp_path, [slow.url, fast.url], **{"sampling.max_concurrent": 2})
        summary = sample.run(recipe, PROBLEMS, tmp_path / "t.jsonl", show_progress=False)
        assert slow.posts <= 2 and fast.posts >= 10 and slow.posts + fast.posts == 12
    assert summary["sampled"] == 12 and summary["urls"][fast.url]["ok"] == fast.posts


def test_statuses_are_classified_for_retry_record_or_stop():
    def kind(status, text=""):
        e = error_for_status(status, text, None, "http://h/v1", "m", "KEY")
        return e.kind, e.retryable, e.permanent, e.fatal

    assert kind(400, "This model's maximum context length is 32768 tokens") == ("context_overflow", False, True, False)
    assert kind(400, "the request exceeds the available context size") == ("context_overflow", False, True, False)
    assert kind(400, "refused by the content policy") == ("client_error", False, True, False)
    assert kind(422, "bad field") == ("client_error", False, True, False)
    assert kind(404) == ("not_found", False, False, True)
    assert kind(401) == ("auth", False, False, True)
    assert kind(408) == ("timeout", True, False, False)
    assert kind(429) == ("rate_limited", True, False, False)
    assert kind(503) == ("server_error", True, False, False)


def _events(*chunks) -> list[bytes]:
    return [b"data: " + json.dumps(c).encode() + b"\n" for c in chunks] + [b"\n", b"data: [DONE]\n"]


def test_streamed_chunks_make_one_r1_generation():
    acc = StreamAccumulator()
    for line in _events({"choices": [{"delta": {"role": "assistant"}}]},
                        {"choices": [{"delta": {"reasoning_content": "2 + 2 "}}]},
                        {"choices": [{"delta": {"reasoning_content": "is 4."}}]},
                        {"choices": [{"delta": {"content": "\\boxed{4}"}, "finish_reason": "stop"}]},
                        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7}}):
        acc.feed(line)
    gen = acc.generation("u")
    assert gen.text == "<think>\n2 + 2 is 4.\n</think>\n\n\\boxed{4}" and gen.reasoning_content is None
    assert (gen.finish_reason, gen.prompt_tokens, gen.completion_tokens) == ("stop", 9, 7)
    no_usage = StreamAccumulator()  # llama_cpp.server streams no usage: one chunk, one token
    for line in _events({"choices": [{"delta": {"content": "<think>a</think>"}}]},
                        {"choices": [{"delta": {"content": " 4"}, "finish_reason": "length"}]}):
        no_usage.feed(line)
    assert no_usage.generation("u").completion_tokens == 2
    cut = StreamAccumulator()
    cut.feed(b'data: {"choices": [{"delta": {"content": "half"}}]}\n')
    with pytest.raises(Exception, match="ended before the generation finished"):
        cut.generation("u")


def _lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_second_sampler_is_refused_and_a_log_gets_progress_lines(tmp_path):
    """`distill sample` with stderr to a pipe (as under nohup or Slurm) prints a progress line every
    `sampling.log_every_s`; while it runs, a second sampler on the same traces file is refused."""
    (tmp_path / "p.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in PROBLEMS))
    traces = tmp_path / "data/runs/log/traces.jsonl"
    with StandInR1(ANSWERS, delay_s=0.15) as server:
        (tmp_path / "log.yaml").write_text(f"""
name: log
student: {{model: x, chat_template: chatml}}
teacher: {{backend: openai, model: stand-in-r1, base_urls: ["{server.url}"]}}
problems: {{path: p.jsonl, split: train}}
sampling: {{n: 2, max_tokens: 16, max_concurrent: 1, log_every_s: 0.5}}
eval: {{problems: p.jsonl}}
""")
        proc = subprocess.Popen([sys.executable, "-m", "distill", "sample", "log.yaml"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _lines(traces) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        with pytest.raises(DistillError, match=rf"being written by sampler pid {proc.pid} .* only one sampler"):
            sample.run(load_recipe(tmp_path / "log.yaml"), PROBLEMS, traces, show_progress=False)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
    keys = [r.key for r in read_records(traces, Trace) if not isinstance(r, BadLine)]
    assert len(keys) == len(set(keys)) == 24  # the refused sampler wrote nothing
    progress = re.findall(r"^sampling: (\d+)/24 \(\d+\.\d%\), \d+\.\d samples/s, ETA \S+, \d+ completion tok/s, "
                          r"\d+ errors, \d+ failed, \S+ elapsed$", err, re.MULTILINE)
    assert len(progress) >= 3, err[-2000:]  # ~4 s of sampling at one line per 0.5 s, and a last line
    assert [int(x) for x in progress] == sorted(int(x) for x in progress) and progress[-1] == "24"
