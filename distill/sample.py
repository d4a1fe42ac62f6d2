"""Teacher sampling: n traces per problem into an append-only, resumable traces.jsonl.

Finished samples are written (and flushed) the moment they arrive; a rerun skips every
(problem_id, sample_index) already in the file, so a kill loses only the requests in flight.

    summary = run(recipe, problems, Path("data/runs/smol/traces.jsonl"))
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import Counter
from pathlib import Path

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from distill.prompts import teacher_messages
from distill.recipe import Recipe
from distill.records import BadLine, JsonlAppender, Problem, Trace, read_records, write_json
from distill.teacher import Teacher, TeacherError, open_teacher


def done_keys(path: Path) -> set[tuple[str, int]]:
    """(problem_id, sample_index) of every whole trace already written."""
    if not path.exists():
        return set()
    return {r.key for r in read_records(path, Trace) if not isinstance(r, BadLine)}


def request_seed(seed: int, problem_id: str, sample_index: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(problem_id.encode()) * 131 + sample_index) % (2**31)


def backoff_s(attempt: int, error: TeacherError, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when it gives one."""
    if error.retry_after is not None:
        return min(error.retry_after, 300.0)
    return random.uniform(0, min(cap, base * 2**attempt))


async def _sample_all(teacher: Teacher, recipe: Recipe, jobs: list[tuple[Problem, int]], out: JsonlAppender,
                      progress: Progress | None) -> tuple[Counter, list[dict], Counter]:
    s = recipe.sampling
    sem = asyncio.Semaphore(s.max_concurrent)
    t0 = time.monotonic()
    tokens: Counter = Counter()
    errors: Counter = Counter()
    failed: list[dict] = []
    task = progress.add_task("sampling", total=len(jobs), tok_s=0.0, errors=0) if progress else None
    limits = httpx.Limits(max_connections=s.max_concurrent, max_keepalive_connections=s.max_concurrent)

    async with httpx.AsyncClient(timeout=httpx.Timeout(s.timeout_s, connect=10), limits=limits) as client:

        async def one(problem: Problem, index: int) -> None:
            messages = teacher_messages(problem.problem, recipe.teacher.system_prompt, recipe.teacher.few_shot)
            params = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
                      "seed": request_seed(s.seed, problem.id, index)}
            async with sem:
                for attempt in range(s.max_retries + 1):
                    try:
                        gen = await teacher.generate(client, messages, params)
                        break
                    except TeacherError as e:
                        errors[e.kind] += 1
                        if not e.retryable or attempt == s.max_retries:
                            failed.append({"problem_id": problem.id, "sample_index": index, "kind": e.kind,
                                           "message": str(e), "attempts": attempt + 1})
                            if progress:
                                progress.advance(task)
                            return
                        await asyncio.sleep(backoff_s(attempt, e))
            trace = Trace(problem_id=problem.id, sample_index=index, problem=problem.problem,
                          answer=problem.answer, domain=problem.domain, teacher=teacher.name,
                          completion=gen.text, reasoning_content=gen.reasoning_content,
                          finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
                          completion_tokens=gen.completion_tokens, tests=problem.tests, choices=problem.choices)
            out.write(trace)
            tokens["prompt"] += gen.prompt_tokens or 0
            tokens["completion"] += gen.completion_tokens or 0
            if progress:
                elapsed = max(time.monotonic() - t0, 1e-9)
                progress.update(task, advance=1, tok_s=tokens["completion"] / elapsed,
                                errors=sum(errors.values()))

        await asyncio.gather(*(one(p, i) for p, i in jobs))
    return tokens, failed, errors


def run(recipe: Recipe, problems: list[Problem], out_path: Path, show_progress: bool = True) -> dict:
    """Sample what is missing from `out_path`; write `sample_summary.json` beside it."""
    out_path = Path(out_path)
    done = done_keys(out_path)
    jobs = [(p, i) for p in problems for i in range(recipe.sampling.n) if (p.id, i) not in done]
    start = time.monotonic()
    tokens, failed, errors = Counter(), [], Counter()
    if jobs:
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[tok_s]:.0f} tok/s, {task.fields[errors]} errors"),
                            TimeRemainingColumn(), disable=not show_progress)
        with open_teacher(recipe.teacher, out_path.parent) as teacher, JsonlAppender(out_path) as out:
            with progress:
                tokens, failed, errors = asyncio.run(_sample_all(teacher, recipe, jobs, out, progress))
    wall = time.monotonic() - start
    summary = {
        "requested": len(problems) * recipe.sampling.n,
        "already_done": len(done),
        "sampled": len(jobs) - len(failed),
        "failed": failed,
        "errors_by_kind": dict(errors),
        "prompt_tokens": tokens["prompt"],
        "completion_tokens": tokens["completion"],
        "wall_s": round(wall, 2),
        "completion_tokens_per_s": round(tokens["completion"] / wall, 1) if wall > 0 else None,
    }
    write_json(out_path.parent / "sample_summary.json", summary)
    return summary
