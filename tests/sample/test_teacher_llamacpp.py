"""The llamacpp teacher on llama.cpp's own server: one slot per request in flight, the shared
system/few-shot prefix computed once for all slots, the server gone when sampling ends."""

import asyncio
import json

import httpx

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
