"""Teacher sampling: n traces per problem into an append-only, resumable, incremental traces.jsonl.

A fixed pool of `sampling.max_concurrent` workers pulls (problem, sample_index) jobs from one
lazy iterator, so 100k jobs never become 100k coroutines and a slow teacher slows the intake
(backpressure). Each finished sample is written as one flushed line the moment it arrives, with its
provenance (settings key, prompt hash, sampling parameters). A rerun samples only what is missing
under the same settings: raising `n` or adding problems asks only for the new samples; lowering
them leaves the rest in the file, unused. A kill -9 loses only the requests in flight.

Failed requests are retried with exponential backoff and full jitter (honouring Retry-After);
failures for good (a 400 refusal, a prompt over the context) are recorded once in
`sample_failures.jsonl` and not asked again; a refused key or an unknown model stops the run.
One sampler per file (a lock); progress as a bar on a terminal, as lines in a log.

    summary = run(recipe, problems, Path("data/runs/smol/traces.jsonl"))
    check_failures(summary, recipe.sampling)   # DistillError above `sampling.max_failed_share`
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import Counter
from pathlib import Path

from distill.errors import DistillError
from distill.progress import Progress
from distill.recipe import Recipe, SamplingCfg
from distill.records import JsonlAppender, Problem, Provenance, Trace, WriterLock, read_json, write_json
from distill.sample.provenance import messages_for, prompt_hash, sampling_params, settings_key
from distill.sample.resume import State, jobs, plan, scan, set_aside_file
from distill.sample.teacher import Teacher, TeacherError, open_teacher


def request_seed(seed: int, problem_id: str, sample_index: int) -> int:
    """A seed per sample, stable across reruns: a resumed run asks for the same samples."""
    return (seed * 1_000_003 + zlib.crc32(problem_id.encode()) * 131 + sample_index) % (2**31)


def backoff_s(attempt: int, error: TeacherError, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when it gives one."""
    if error.retry_after is not None:
        return min(error.retry_after, 300.0) * random.uniform(1.0, 1.1)  # spread the herd a little
    return random.uniform(0, min(cap, base * 2**attempt))


class Tally:
    """What the progress lines and the summary report."""

    def __init__(self) -> None:
        self.sampled = 0
        self.tokens: Counter = Counter()
        self.errors: Counter = Counter()  # every failed attempt, by kind
        self.failed: list[dict] = []  # samples that failed for good or exhausted their retries
        self.stop_reason: str | None = None
        self.pause_until = 0.0  # a 429 with Retry-After holds back every worker, not just the one that got it

    def extra(self, elapsed: float) -> str:
        return (f"{self.tokens['completion'] / max(elapsed, 1e-9):.0f} completion tok/s, "
                f"{sum(self.errors.values())} errors, {len(self.failed)} failed")


async def _sample_all(teacher: Teacher, recipe: Recipe, key: str, jobs, total: int, out: JsonlAppender,
                      failures: JsonlAppender, progress: Progress, log) -> Tally:
    s = recipe.sampling
    params = sampling_params(recipe)
    tally = Tally()

    def fail(problem: Problem, index: int, e: TeacherError, attempts: int, prompt: str) -> None:
        record = {"problem_id": problem.id, "sample_index": index, "kind": e.kind, "message": str(e),
                  "attempts": attempts}
        tally.failed.append(record)
        if e.permanent:  # the same request would fail the same way: never ask it again under these settings
            failures.write({**record, "settings": key, "prompt": prompt, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if e.fatal:
            tally.stop_reason = str(e)

    async def one(problem: Problem, index: int) -> None:
        messages = messages_for(problem, recipe)
        prov = Provenance(settings=key, prompt=prompt_hash(messages), params=params)
        request = {**s.extra_body, "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
                   "seed": request_seed(s.seed, problem.id, index)}
        for attempt in range(s.max_retries + 1):
            if (wait := tally.pause_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            try:
                gen = await teacher.generate(messages, request)
                break
            except TeacherError as e:
                tally.errors[e.kind] += 1
                if e.kind == "rate_limited" and e.retry_after:
                    tally.pause_until = max(tally.pause_until, time.monotonic() + min(e.retry_after, 300.0))
                log.write(f"{time.strftime('%H:%M:%S')} {problem.id}#{index} attempt {attempt + 1}: {e}\n")
                if not e.retryable or attempt == s.max_retries:
                    return fail(problem, index, e, attempt + 1, prov.prompt)
                await asyncio.sleep(backoff_s(attempt, e))
        out.write(Trace(problem_id=problem.id, sample_index=index, problem=problem.problem,
                        answer=problem.answer, domain=problem.domain, teacher=teacher.name,
                        completion=gen.text, reasoning_content=gen.reasoning_content,
                        finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
                        completion_tokens=gen.completion_tokens, tests=problem.tests, choices=problem.choices,
                        time_limit_s=problem.time_limit_s, memory_mb=problem.memory_mb, provenance=prov))
        tally.sampled += 1
        tally.tokens["prompt"] += gen.prompt_tokens or 0
        tally.tokens["completion"] += gen.completion_tokens or 0

    async def worker() -> None:
        # All workers share one iterator: next() never awaits, so no job is taken twice.
        for problem, index in jobs:
            if tally.stop_reason:
                return
            await one(problem, index)
            progress.update(tally.sampled + len(tally.failed), tally.extra(time.monotonic() - progress.t0))

    teacher.configure(s)
    await teacher.open(s.max_concurrent, s.timeout_s)
    try:
        await teacher.preflight()  # a model the endpoint does not serve stops here, before any cost
        await asyncio.gather(*(worker() for _ in range(min(s.max_concurrent, total))))
    finally:
        await teacher.close()
    return tally


def _import(teacher, key: str, state: State, out: JsonlAppender, progress: Progress) -> Tally:
    """The `dataset` backend: write the imported traces that are not in the file yet."""
    tally = Tally()
    for trace in teacher.traces():
        if not state.is_done(*trace.key):
            trace.provenance = Provenance(settings=key)
            out.write(trace)
            state.done.setdefault(trace.problem_id, set()).add(trace.sample_index)
            tally.sampled += 1
            tally.tokens["completion"] += trace.completion_tokens or 0
            progress.update(tally.sampled)
    return tally


def run(recipe: Recipe, problems: list[Problem], out_path: Path, show_progress: bool = True,
        set_aside: bool = False) -> dict:
    """Sample what is missing from `out_path`; write `sample_summary.json` (and `sample.log`) beside it.

    `set_aside`: a file made wholly under other settings is renamed `traces.<its key>.jsonl` (never
    deleted), and a file set aside earlier under this run's settings comes back."""
    out_path = Path(out_path)
    with WriterLock(out_path, what="sampler"):
        return _run(recipe, problems, out_path, "auto" if show_progress else "off", set_aside)


def _run(recipe: Recipe, problems: list[Problem], out_path: Path, mode: str, set_aside: bool) -> dict:
    start = time.monotonic()
    summary_path = out_path.parent / "sample_summary.json"
    failures_path = out_path.parent / "sample_failures.jsonl"
    previous = read_json(summary_path) if summary_path.exists() else {}
    previous_failed = {(f["problem_id"], f["sample_index"]) for f in previous.get("failed", [])}
    key = settings_key(recipe)
    state = scan(out_path, failures_path, key)
    if state.foreign and not state.traces and set_aside:
        set_aside_file(out_path, state)
        state = scan(out_path, failures_path, key)
    if state.foreign:
        raise DistillError(f"{out_path} holds {state.foreign} traces made under other teacher or sampling settings "
                           f"(e.g. {state.foreign_example}); they must not be mixed with this run's. Move the file "
                           "aside (`distill run` does so when the settings change), or restore the settings")
    dataset_mode = recipe.teacher.backend == "dataset"
    counts = Counter() if dataset_mode else plan(recipe, problems, state, out_path, previous_failed)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    teacher = open_teacher(recipe.teacher, out_path.parent)
    tally = Tally()
    s = recipe.sampling
    if counts["todo"] or dataset_mode:
        with teacher, JsonlAppender(out_path) as out, JsonlAppender(failures_path) as failures, \
                open(out_path.parent / "sample.log", "a") as log, \
                Progress("importing" if dataset_mode else "sampling", None if dataset_mode else counts["todo"],
                         s.log_every_s, mode, unit=" samples") as progress:
            if dataset_mode:
                tally = _import(teacher, key, state, out, progress)
            else:
                tally = asyncio.run(_sample_all(teacher, recipe, key, jobs(recipe, problems, state),
                                                counts["todo"], out, failures,
                                                progress, log))
    wall = time.monotonic() - start
    summary = _summary(recipe, teacher, key, state, counts, tally, wall, dataset_mode)
    write_json(summary_path, summary)
    if tally.stop_reason:
        raise DistillError(f"stopped: {tally.stop_reason}. Fix the setting and rerun; "
                           f"{tally.sampled} samples were kept")
    return summary


def _summary(recipe, teacher, key, state, counts, tally, wall, dataset_mode) -> dict:
    t = recipe.teacher
    cost = (tally.tokens["prompt"] * t.price_per_million_input
            + tally.tokens["completion"] * t.price_per_million_output) / 1e6
    requested = counts["requested"] if not dataset_mode else state.traces + tally.sampled
    not_attempted = 0 if dataset_mode else counts["todo"] - tally.sampled - len(tally.failed)
    missing = len(tally.failed) + counts["failed_for_good_before"] + not_attempted
    return {
        "teacher": teacher.name,
        "settings_key": key,
        "requested": requested,
        "already_done": counts["already_done"] if not dataset_mode else state.traces,
        "attempted": counts["todo"] if not dataset_mode else tally.sampled,
        "retried_previous_failures": counts["retried_previous_failures"],
        "sampled": tally.sampled,
        "failed": tally.failed,
        "failed_problems": sorted({f["problem_id"] for f in tally.failed}),
        "failures_by_kind": dict(Counter(f["kind"] for f in tally.failed)),
        "failed_for_good_before": counts["failed_for_good_before"],  # skipped: recorded in sample_failures.jsonl
        "failed_share": round(missing / requested, 6) if requested else 0.0,
        "errors_by_kind": dict(tally.errors),
        "not_attempted": not_attempted,
        "unused_in_file": state.traces - counts["already_done"] if not dataset_mode else 0,
        "prompt_tokens": tally.tokens["prompt"],
        "completion_tokens": tally.tokens["completion"],
        "cost_usd": round(cost, 6),
        "wall_s": round(wall, 2),
        "samples_per_s": round(tally.sampled / wall, 2) if wall > 0 else None,
        "completion_tokens_per_s": round(tally.tokens["completion"] / wall, 1) if wall > 0 else None,
        "requests_by_url": dict(getattr(teacher, "requests_by_url", {})),
        "urls": teacher.url_stats(),
        **({"skipped_rows": teacher.skipped} if dataset_mode else {}),
    }


def check_failures(summary: dict, cfg: SamplingCfg) -> None:
    """Stop the pipeline when more samples are missing than `sampling.max_failed_share` allows."""
    share = summary["failed_share"]
    if share > cfg.max_failed_share:
        n = round(share * summary["requested"])
        raise DistillError(
            f"{n} samples failed ({share:.1%} of {summary['requested']}, above sampling.max_failed_share="
            f"{cfg.max_failed_share}); see sample_summary.json and sample.log. A rerun retries those that ran out "
            "of retries; failures for good (refusals, prompts over the context) are not retried. Raise "
            "`sampling.max_failed_share` to go on without them")
