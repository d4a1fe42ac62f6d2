"""The llamacpp teacher on llama.cpp's own server: one slot per request in flight, the shared
system/few-shot prefix computed once for all slots, the server gone when sampling ends."""

import asyncio
import json

import httpx
import pytest

from distill.errors import DistillError
from distill.recipe import load_recipe
from distill.records import Problem, Trace, read_records
from distill.sample import sampler as sample
from distill.sample.prompts import DEFAULT_SYSTEM, teacher_messages
from distill.sample.teacher.llamacpp import LlamaCppTeacher, server_metrics

EMBEDDED = "embedded:smollm2-135m-instruct"
PROBLEMS = [Problem(id=f"p{i}", problem=f"Ava has {10 + i} pens and gets {20 + i} more. How many pens now?",
                    answer=str(30 + 2 * i), split="train") for i in range(3)]


def test_slots_follow_requests_in_flight_and_the_prefix_is_computed_once(tmp_path):
    teacher = LlamaCppTeacher(EMBEDDED, n_ctx=1024, n_threads=2, log_path=tmp_path / "server.log")
    params = {"temperature": 0.7, "top_p": 0.95, "max_tokens": 6}

    async def go():
        await teacher.open(max_concurrent=4, timeout_s=120)
        try:
            props = httpx.get(teacher.server.base + "/props", timeout=10).json()
            gens = await asyncio.gather(*(teacher.generate(teacher_messages(p.problem, DEFAULT_SYSTEM, 4),
                                                           {**params, "seed": k})
                                          for k, p in enumerate(PROBLEMS + PROBLEMS)))
        finally:
            await teacher.close()
        return props, gens

    props, gens = asyncio.run(go())
    assert props["total_slots"] == 4 and teacher.slots_filled == 4
    assert len(gens) == 6 and all(g.completion_tokens and g.prompt_tokens > 400 for g in gens)
    assert teacher.server.proc.poll() is not None  # stopped by close()
    # Without the n-request that fills every slot, the first request on each of the 4 slots computes
    # the whole ~470-token prompt (>= 4x); with it, the prompt is computed once plus each problem's tail.
    computed, reused = teacher.metrics["prompt_tokens_total"], teacher.metrics["prompt_tokens_cached_total"]
    prompt = gens[0].prompt_tokens
    assert computed < 2 * prompt, teacher.metrics
    assert reused > 5 * (prompt - 60), teacher.metrics  # every request reused the shared prefix
    assert json.loads((tmp_path / "server.json").read_text()) == teacher.metrics


def test_sampler_through_the_served_teacher(tmp_path):
    (tmp_path / "r.yaml").write_text(f"""
name: t
student: {{model: x}}
teacher: {{backend: llamacpp, model: '{EMBEDDED}', few_shot: 2, n_ctx: 1024, n_threads: 2}}
problems: {{path: p.jsonl}}
sampling: {{n: 2, max_tokens: 8, max_concurrent: 3, timeout_s: 120}}
eval: {{problems: p.jsonl}}
""")
    out = tmp_path / "run" / "traces.jsonl"
    summary = sample.run(load_recipe(tmp_path / "r.yaml"), PROBLEMS[:2], out, show_progress=False)
    assert summary["sampled"] == 4 and not summary["failed"]
    [(url, count)] = summary["requests_by_url"].items()
    assert url.startswith("http://127.0.0.1:") and count == 4
    traces = [t for t in read_records(out, Trace)]
    assert sorted(t.key for t in traces) == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1)]
    assert all(t.teacher == EMBEDDED and 0 < t.completion_tokens <= 8 for t in traces)
    assert (tmp_path / "run" / "teacher-server.log").exists()
    with httpx.Client() as c:  # the server went with the sampling run
        try:
            c.get(url.removesuffix("/v1") + "/health", timeout=2)
            raise AssertionError("llama-server still answers after sampling ended")
        except httpx.TransportError:
            pass


def test_server_metrics_parses_prometheus_lines():
    text = ("# HELP llamacpp:prompt_tokens_total Number of prompt tokens\n# TYPE llamacpp:prompt_tokens_total counter\n"
            "llamacpp:prompt_tokens_total 512\nllamacpp:prompt_tokens_cached_total 1.5e3\n")
    assert server_metrics(text) == {"prompt_tokens_total": 512.0, "prompt_tokens_cached_total": 1500.0}


def test_a_requantized_teacher_serves_the_converted_file_with_its_server_args(tmp_path, monkeypatch):
    from distill.export.quants import tensor_census
    from distill.llamacpp import requantized

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    teacher = LlamaCppTeacher(EMBEDDED, n_ctx=512, n_threads=2, log_path=tmp_path / "server.log",
                              requantize="Q8_0", server_args=["-ctk", "q8_0"])

    async def go():
        await teacher.open(max_concurrent=1, timeout_s=120)
        try:
            props = httpx.get(teacher.server.base + "/props", timeout=10).json()
            gen = await teacher.generate(teacher_messages(PROBLEMS[0].problem, DEFAULT_SYSTEM, 0),
                                         {"temperature": 0.0, "max_tokens": 4})
        finally:
            await teacher.close()
        return props, gen

    props, gen = asyncio.run(go())
    served = tmp_path / "cache" / "served" / props["model_path"].rsplit("/", 1)[-1]
    assert served.exists() and served.name.endswith(".Q8_0.gguf") and gen.completion_tokens > 0
    # The shipped Q4_1 file is all Q4_1 but its norms; the served one holds Q8_0 in their place.
    types = tensor_census(served)["tensor_types"]
    assert types.get("Q8_0", 0) > 100 and "Q4_1" not in types, types
    assert teacher.server.command()[-2:] == ["-ctk", "q8_0"]
    # Converted once: the next run takes the cached file as it is.
    mtime = served.stat().st_mtime_ns
    assert requantized(teacher.gguf, "Q8_0") == served and served.stat().st_mtime_ns == mtime
    # server_args reach llama-server itself: one it refuses stops the start with its own words.
    wrong = LlamaCppTeacher(EMBEDDED, n_ctx=512, n_threads=2, log_path=tmp_path / "wrong.log",
                            server_args=["-ctk", "q9_9"])
    with pytest.raises(DistillError, match="llama-server exited"):
        asyncio.run(wrong.open(max_concurrent=1, timeout_s=60))


def test_requantize_keys_the_traces_and_bad_values_are_refused():
    from pydantic import ValidationError

    from distill.recipe import Recipe
    from distill.sample.provenance import settings_key

    def recipe(**teacher):
        return Recipe.model_validate({"name": "t", "student": {"model": "x"}, "problems": {"path": "p.jsonl"},
                                      "eval": {"problems": "p.jsonl"},
                                      "teacher": {"backend": "llamacpp", "model": EMBEDDED, **teacher}})

    plain = settings_key(recipe())
    assert settings_key(recipe(requantize="Q8_0")) != plain  # another model: its traces are not these
    assert settings_key(recipe(server_args=["-ctk", "q8_0"])) == plain  # how it is served is not keyed
    with pytest.raises(ValidationError, match="teacher.requantize. 'Q9_9' is no llama.cpp type"):
        recipe(requantize="Q9_9")
    with pytest.raises(ValidationError, match="for the llama-server teacher"):
        recipe(requantize="Q8_0", in_process=True)
