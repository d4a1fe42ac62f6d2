"""Teacher sampling: n traces per problem into an append-only, resumable traces.jsonl.

A fixed pool of `sampling.max_concurrent` workers pulls (problem, sample_index) jobs from one
lazy iterator, so 100k jobs never become 100k coroutines and a slow teacher slows the intake
(backpressure). Each finished sample is written as one flushed line the moment it arrives; a
rerun skips every (problem_id, sample_index) already in the file, so a kill -9 loses only the
requests in flight, and a torn last line is dropped. Failed requests are retried with
exponential backoff and full jitter (honouring Retry-After); samples that exhaust their retries
are listed in `sample_summary.json`, and since they are not in the file a rerun retries only them.

    summary = run(recipe, problems, Path("data/runs/smol/traces.jsonl"))
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import Counter
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from distill.errors import DistillError
from distill.recipe import Recipe
from distill.records import BadLine, JsonlAppender, Problem, Trace, read_json, read_records, write_json
from distill.sample.prompts import teacher_messages
from distill.sample.teacher import Teacher, TeacherError, open_teacher


def done_keys(path: Path) -> set[tuple[str, int]]:
    """(problem_id, sample_index) of every whole trace already written."""
    if not path.exists():
        return set()
    return {r.key for r in read_records(path, Trace) if not isinstance(r, BadLine)}


def request_seed(seed: int, problem_id: str, sample_index: int) -> int:
    """A seed per sample, stable across reruns: a resumed run asks for the same samples."""
    return (seed * 1_000_003 + zlib.crc32(problem_id.encode()) * 131 + sample_index) % (2**31)


def backoff_s(attempt: int, error: TeacherError, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when it gives one."""
    if error.retry_after is not None:
        return min(error.retry_after, 300.0) * random.uniform(1.0, 1.1)  # spread the herd a little
    return random.uniform(0, min(cap, base * 2**attempt))


class Tally:
    """What the progress bar and the summary report."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.sampled = 0
        self.tokens: Counter = Counter()
        self.errors: Counter = Counter()  # every failed attempt, by kind
        self.failed: list[dict] = []  # samples that exhausted their retries
        self.stop_reason: str | None = None
        self.pause_until = 0.0  # a 429 with Retry-After holds back every worker, not just the one that got it


def _progress(show: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:.1f} samples/s, {task.fields[tok_s]:.0f} tok/s, "
                               "{task.fields[errors]} errors, {task.fields[failed]} failed"),
                    TextColumn("ETA"), TimeRemainingColumn(), disable=not show)


async def _sample_all(teacher: Teacher, recipe: Recipe, jobs, total: int, out: JsonlAppender,
                      progress: Progress, log) -> Tally:
    s, t = recipe.sampling, recipe.teacher
    tally = Tally()
    task = progress.add_task("sampling", total=total, rate=0.0, tok_s=0.0, errors=0, failed=0)
    last_refresh = 0.0

    def refresh(force: bool = False) -> None:
        nonlocal last_refresh
        now = time.monotonic()
        if force or now - last_refresh > 0.2:  # cheap at thousands of samples/s
            last_refresh = now
            elapsed = max(now - tally.t0, 1e-9)
            progress.update(task, completed=tally.sampled + len(tally.failed), rate=tally.sampled / elapsed,
                            tok_s=tally.tokens["completion"] / elapsed, errors=sum(tally.errors.values()),
                            failed=len(tally.failed))

    async def one(problem: Problem, index: int) -> None:
        messages = teacher_messages(problem, t.system_prompt, t.few_shot, s.prompts)
        params = {**s.extra_body, "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
                  "seed": request_seed(s.seed, problem.id, index)}
        for attempt in range(s.max_retries + 1):
            if (wait := tally.pause_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            try:
                gen = await teacher.generate(messages, params)
                break
            except TeacherError as e:
                tally.errors[e.kind] += 1
                if e.kind == "rate_limited" and e.retry_after:
                    tally.pause_until = max(tally.pause_until, time.monotonic() + min(e.retry_after, 300.0))
                log.write(f"{time.strftime('%H:%M:%S')} {problem.id}#{index} attempt {attempt + 1}: {e}\n")
                if not e.retryable or attempt == s.max_retries:
                    tally.failed.append({"problem_id": problem.id, "sample_index": index, "kind": e.kind,
                                         "message": str(e), "attempts": attempt + 1})
                    if e.kind == "auth":  # every further request would be refused too
                        tally.stop_reason = str(e)
                    refresh()
                    return
                await asyncio.sleep(backoff_s(attempt, e))
        out.write(Trace(problem_id=problem.id, sample_index=index, problem=problem.problem,
                        answer=problem.answer, domain=problem.domain, teacher=teacher.name,
                        completion=gen.text, reasoning_content=gen.reasoning_content,
                        finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
                        completion_tokens=gen.completion_tokens, tests=problem.tests, choices=problem.choices,
                        time_limit_s=problem.time_limit_s, memory_mb=problem.memory_mb))
        tally.sampled += 1
        tally.tokens["prompt"] += gen.prompt_tokens or 0
        tally.tokens["completion"] += gen.completion_tokens or 0
        refresh()

    async def worker() -> None:
        # All workers share one iterator: next() never awaits, so no job is taken twice.
        for problem, index in jobs:
            if tally.stop_reason:
                return
            await one(problem, index)

    await teacher.open(s.max_concurrent, s.timeout_s)
    try:
        await asyncio.gather(*(worker() for _ in range(min(s.max_concurrent, total))))
    finally:
        await teacher.close()
        refresh(force=True)
    return tally


def _import(teacher, out: JsonlAppender, done: set, progress: Progress) -> Tally:
    """The `dataset` backend: write the imported traces that are not in the file yet."""
    tally = Tally()
    task = progress.add_task("importing", total=None, rate=0.0, tok_s=0.0, errors=0, failed=0)
    for trace in teacher.traces():
        if trace.key not in done:
            out.write(trace)
            done.add(trace.key)
            tally.sampled += 1
            tally.tokens["completion"] += trace.completion_tokens or 0
            progress.advance(task)
    return tally


def run(recipe: Recipe, problems: list[Problem], out_path: Path, show_progress: bool = True) -> dict:
    """Sample what is missing from `out_path`; write `sample_summary.json` (and `sample.log`) beside it."""
    out_path = Path(out_path)
    summary_path = out_path.parent / "sample_summary.json"
    previous = read_json(summary_path) if summary_path.exists() else {}
    prev_failed = {(f["problem_id"], f["sample_index"]) for f in previous.get("failed", [])}
    done = done_keys(out_path)
    n = recipe.sampling.n
    todo = [(p, i) for p in problems for i in range(n) if (p.id, i) not in done]
    start = time.monotonic()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    teacher = open_teacher(recipe.teacher, out_path.parent)
    dataset_mode = hasattr(teacher, "traces")
    tally = Tally()
    if todo or dataset_mode:
        with teacher, JsonlAppender(out_path) as out, open(out_path.parent / "sample.log", "a") as log, \
                _progress(show_progress) as progress:
            if dataset_mode:
                tally = _import(teacher, out, done, progress)
            else:
                tally = asyncio.run(_sample_all(teacher, recipe, iter(todo), len(todo), out, progress, log))
    wall = time.monotonic() - start
    t = recipe.teacher
    cost = (tally.tokens["prompt"] * t.price_per_million_input
            + tally.tokens["completion"] * t.price_per_million_output) / 1e6
    failed_keys = {(f["problem_id"], f["sample_index"]) for f in tally.failed}
    summary = {
        "teacher": teacher.name,
        "requested": len(problems) * n if not dataset_mode else None,
        "already_done": len(done) if not dataset_mode else len(done) - tally.sampled,
        "attempted": len(todo) if not dataset_mode else tally.sampled,
        "retried_previous_failures": len(prev_failed & {(p.id, i) for p, i in todo}),
        "sampled": tally.sampled,
        "failed": tally.failed,
        "failed_problems": sorted({k[0] for k in failed_keys}),
        "failures_by_kind": dict(Counter(f["kind"] for f in tally.failed)),
        "errors_by_kind": dict(tally.errors),
        "not_attempted": len(todo) - tally.sampled - len(tally.failed) if not dataset_mode else 0,
        "prompt_tokens": tally.tokens["prompt"],
        "completion_tokens": tally.tokens["completion"],
        "cost_usd": round(cost, 6),
        "wall_s": round(wall, 2),
        "samples_per_s": round(tally.sampled / wall, 2) if wall > 0 else None,
        "completion_tokens_per_s": round(tally.tokens["completion"] / wall, 1) if wall > 0 else None,
        "requests_by_url": dict(getattr(teacher, "requests_by_url", {})),
    }
    if dataset_mode:
        summary["skipped_rows"] = teacher.skipped
    write_json(summary_path, summary)
    if tally.stop_reason:
        raise DistillError(f"stopped: {tally.stop_reason}. Set the right key and rerun; "
                           f"{tally.sampled} samples were kept")
    return summary
