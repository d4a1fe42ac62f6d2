"""Rejection filter: keep only correct, well-formed, clean traces and say why the rest went.

Writes DIR/accepted.jsonl, DIR/rejected.jsonl, DIR/report.json, DIR/report.md and PNG plots
(SPEC.md); every input line ends in exactly one of the two JSONL files, lines that are not a
valid trace as `malformed_record`. With a `Selection` (the pipeline's), only this run's traces
are inputs: those of its settings, its problems and its first n samples; the rest are counted.

    report = run(Path("traces.jsonl"), Path("out/"), FilterCfg(), workers=None)  # all cores

Bounded memory at any trace count: the traces are streamed twice and never held. Pass 1 judges
each trace alone (form, quality, correctness) in a pool of worker processes, a bounded window of
traces in flight, each with its own deadline: a worker stuck past it (a pathological expression
that math-verify's alarm cannot interrupt, say) is killed and replaced and the trace is rejected as
`verify_timeout`. Verdicts go to an on-disk index (filter/index.py) while new problems go through
the on-disk duplicate index and the decontaminator; then the per-problem steps (duplicates, the
pass-rate band, the k shortest correct traces) run as SQL over the index. Pass 2 re-reads the
traces and writes each with its verdict, in input order, whatever the number of workers.

Reasons beyond SPEC.md's list: `too_short` (under `min_completion_tokens`), `verify_timeout` (the
trace's worker was killed at its deadline), `pass_rate_out_of_band`, `over_per_problem_limit`,
and `judge_error:<Exception>` (a checker bug; it costs that trace only).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from distill.filter import sandbox
from distill.filter.dedup import Decontaminator, load_eval_texts, normalise
from distill.filter.index import ANSWER_REASONS, TraceIndex
from distill.filter.jail import scrub_environment
from distill.filter.length import check_tokenizer, student_tokens
from distill.filter.quality import estimate_tokens, quality_reasons
from distill.filter.verify import check_answer, extract_answer
from distill.progress import Progress
from distill.r1 import THINK_CLOSE, split_r1
from distill.recipe import FilterCfg
from distill.records import BadLine, Trace, Verdict, WriterLock, iter_lines, parse_record

__all__ = ["ANSWER_REASONS", "Selection", "accepted_digest", "deadline_s", "judge", "n_tokens", "run"]


def n_tokens(trace: Trace) -> int:
    """Completion length in tokens: the teacher's count, else an estimate (words and punctuation).
    Reasoning kept apart in `reasoning_content` counts only when it is not also in the completion."""
    if trace.completion_tokens is not None:
        return trace.completion_tokens
    apart = trace.reasoning_content if trace.reasoning_content and THINK_CLOSE not in trace.completion else ""
    return estimate_tokens(apart + trace.completion)


def judge(trace: Trace, cfg: FilterCfg) -> list[str]:
    """All reasons to reject one trace on its own; [] means accepted so far."""
    reasons: list[str] = []
    if trace.finish_reason == "length":
        reasons.append("truncated")
    parts = split_r1(trace.completion, trace.reasoning_content)
    if cfg.require_think:
        reasons += parts.form
    reasons += quality_reasons(trace.problem, parts.reasoning, parts.answer, n_tokens(trace), cfg)
    if cfg.max_length and "too_long" not in reasons and student_tokens(trace, cfg.tokenizer) > cfg.max_length:
        reasons.append("too_long")  # would not fit train.max_length in the student's tokens
    predicted = extract_answer(parts.answer, trace.domain, trace.choices, fallbacks=parts.reasoning is not None)
    limits = sandbox.code_limits(cfg, trace.time_limit_s, trace.memory_mb)
    reasons += check_answer(trace.domain, trace.answer, predicted, trace.choices, cfg.verify_timeout_s,
                            tests=[t.model_dump() for t in trace.tests or []], sandbox_cfg=limits)
    return reasons


def deadline_s(trace: Trace, cfg: FilterCfg) -> float:
    """How long one trace may take before its worker is killed: three math-verify calls (gold,
    answer, compare) or the code jail's start, compile and every test at its wall limit."""
    if trace.domain == "code":
        limits = sandbox.code_limits(cfg, trace.time_limit_s, trace.memory_mb)
        return sandbox.deadline_s(len(trace.tests or []), limits) + cfg.verify_timeout_s + 1
    return 3 * cfg.verify_timeout_s + 1


def completion_hash(trace: Trace) -> int:
    """Repeated completions of one problem are duplicates: a 64-bit hash of the normalised text."""
    digest = hashlib.blake2b(normalise(trace.completion).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _judge_timed(trace: Trace, cfg: FilterCfg) -> tuple[list[str], float, int, int]:
    start = time.monotonic()
    try:
        reasons = judge(trace, cfg)
    except Exception as e:  # noqa: BLE001 -- a checker bug on odd input must cost one trace, not the run
        reasons = [f"judge_error:{type(e).__name__}"]
    return reasons, time.monotonic() - start, n_tokens(trace), completion_hash(trace)


_WORKER_CFG: FilterCfg | None = None


def _init_worker(cfg_json: str) -> None:
    global _WORKER_CFG
    scrub_environment()  # no teacher key or hub token in a process that runs the judge
    _WORKER_CFG = FilterCfg.model_validate_json(cfg_json)


def _judge_line(line: str) -> tuple[list[str], float, int, int]:
    # Workers get the raw JSON line and the config once at start: pickling a str is far cheaper
    # for the parent than pickling a pydantic model per trace (the parent parses each line too, for
    # its deadline and the selection, but judging a trace costs far more than parsing it).
    return _judge_timed(parse_record(line, Trace), _WORKER_CFG)


def _pool(workers: int, cfg: FilterCfg):
    """The judging processes (pebble: a per-task timeout kills and replaces a stuck worker)."""
    from pebble import ProcessPool

    return ProcessPool(max_workers=workers, initializer=_init_worker, initargs=(cfg.model_dump_json(),))


@dataclass
class Selection:
    """Which traces are this run's: its settings key, its problems (None: all) and its first n samples."""

    settings: str | None = None
    problems: set[str] | None = None
    n: int | None = None

    def wants(self, trace: Trace) -> bool:
        if self.settings is not None and (trace.provenance is None or trace.provenance.settings != self.settings):
            return False
        if self.problems is not None and trace.problem_id not in self.problems:
            return False
        return self.n is None or trace.sample_index < self.n


def judged(path: Path, cfg: FilterCfg, workers: int, selection: Selection | None,
           skipped: Counter) -> Iterator[tuple[int, Trace | BadLine, tuple | None]]:
    """(line, trace or BadLine, (reasons, seconds, n_tokens, completion hash)) in input order,
    judged `workers` at a time with at most 32 traces per worker in flight."""
    def inputs():
        for n, text, _complete in iter_lines(path):
            if not text.strip():
                continue
            rec = parse_record(text, Trace, n)
            if isinstance(rec, Trace) and selection is not None and not selection.wants(rec):
                skipped["not_this_run"] += 1
                continue
            yield n, text, rec

    if workers == 1:  # one process: math-verify's own alarms still bound each call (main thread)
        for n, _text, rec in inputs():
            yield n, rec, None if isinstance(rec, BadLine) else _judge_timed(rec, cfg)
        return
    from concurrent.futures import TimeoutError as FutureTimeout

    window: deque = deque()

    def result(n, rec, fut):
        if fut is None:
            return n, rec, None
        try:
            return n, rec, fut.result()
        except FutureTimeout:
            out = ["verify_timeout"], deadline_s(rec, cfg)
        except Exception as e:  # noqa: BLE001 -- a worker that died (out of memory, signal)
            out = [f"judge_error:{type(e).__name__}"], 0.0
        return n, rec, (*out, n_tokens(rec), completion_hash(rec))

    with _pool(workers, cfg) as pool:
        try:
            for n, text, rec in inputs():
                fut = None if isinstance(rec, BadLine) else pool.schedule(_judge_line, args=(text,),
                                                                          timeout=deadline_s(rec, cfg))
                window.append((n, rec, fut))
                while len(window) >= 32 * workers:
                    yield result(*window.popleft())
            while window:
                yield result(*window.popleft())
        except BaseException:
            pool.stop()  # do not wait for verdicts nobody will read
            raise


def run(traces_path: Path, out_dir: Path, cfg: FilterCfg, workers: int | None = None,
        progress: bool = True, selection: Selection | None = None) -> dict:
    """Judge `traces_path` (this run's traces, with a selection); write accepted/rejected JSONL,
    report.json/.md and plots into `out_dir`. One filter per output folder at a time."""
    traces_path, out_dir = Path(traces_path), Path(out_dir)
    with WriterLock(out_dir / "accepted.jsonl", what="filter"):
        for stale in [*out_dir.glob(".index.*.sqlite"), *out_dir.glob(".*.jsonl.*.tmp")]:
            stale.unlink()  # left by a filter that was killed: no one else writes here now
        return _run(traces_path, out_dir, cfg, workers, progress, selection)


def _run(traces_path: Path, out_dir: Path, cfg: FilterCfg, workers: int | None, progress: bool,
         selection: Selection | None) -> dict:
    from distill.filter import report as filter_report
    from distill.filter.dedup import ProblemIndex

    started = time.monotonic()
    workers = workers or os.cpu_count() or 1
    if cfg.max_length:
        check_tokenizer(cfg.tokenizer)
    eval_texts, eval_counts = load_eval_texts(cfg.decontaminate) if cfg.decontaminate else ([], {})
    deco = Decontaminator(eval_texts, cfg.decontaminate_ngram, cfg.decontaminate_same_numbers) if eval_texts else None
    skipped: Counter = Counter()
    dups: dict[str, str] = {}
    contaminated: list[str] = []
    with TraceIndex(out_dir) as index, Progress("judging", None, 30.0, "auto" if progress else "off",
                                                unit=" traces") as bar:
        problems = ProblemIndex(index.db, cfg.near_dup_threshold) if cfg.dedup else None
        for k, (n, rec, verdict) in enumerate(judged(traces_path, cfg, workers, selection, skipped), 1):
            if verdict is None:
                index.add_malformed(n, rec.reason)
                continue
            index.add(n, rec, *verdict)
            if index.first_time(rec.problem_id):  # problem-level checks, once per problem, in input order
                if problems is not None and (kept := problems.add(rec.problem_id, rec.problem)) is not None:
                    dups[rec.problem_id] = kept
                if deco is not None and deco.contaminated(rec.problem):
                    contaminated.append(rec.problem_id)
            bar.update(k)
        index.mark_problems(dups, contaminated)
        index.select(cfg.pass_rate_band, cfg.max_per_problem)
        outputs = write_outputs(traces_path, out_dir, index)
        problem_info = {"duplicate_problems": dups, "contaminated_problems": sorted(contaminated),
                        "eval_sets": eval_counts, "skipped": dict(skipped)}
        return filter_report.write(out_dir, index, cfg, problem_info=problem_info, outputs=outputs,
                                   workers=workers, seconds=time.monotonic() - started)


def write_outputs(traces_path: Path, out_dir: Path, index: TraceIndex) -> dict:
    """Pass 2: each indexed line of the traces with its verdict, streamed into accepted/rejected."""
    from distill.records import JsonlWriter

    verdicts = index.verdicts()
    with JsonlWriter(out_dir / "accepted.jsonl") as acc, JsonlWriter(out_dir / "rejected.jsonl") as rej:
        pending = next(verdicts, None)
        for n, text, _complete in iter_lines(traces_path):
            if pending is None:
                break
            if n != pending[0]:
                continue  # a blank line or another run's trace
            _, error, reasons = pending
            if error is not None:
                rej.write({"line": n, "raw": text, "error": error,
                           "verdict": {"accepted": False, "reasons": reasons}})
            else:
                trace = Trace.model_validate(json.loads(text))  # as pass 1 read it
                trace.verdict = Verdict(accepted=not reasons, reasons=reasons)
                (rej if reasons else acc).write(trace.model_dump_json(exclude_none=True))
            pending = next(verdicts, None)
    return {name: {"sha256": w.sha256, "lines": w.count, "bytes": w.bytes}
            for name, w in (("accepted.jsonl", acc), ("rejected.jsonl", rej))}


def accepted_digest(out_dir: Path) -> str:
    """The sha256 of `accepted.jsonl` as the filter wrote it (kept in report.json: no re-read)."""
    from distill.records import fingerprint, read_json

    report = Path(out_dir) / "report.json"
    try:
        return read_json(report)["outputs"]["accepted.jsonl"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return fingerprint(Path(out_dir) / "accepted.jsonl")
