"""Rejection filter: keep only correct, well-formed, clean traces and say why the rest went.

Writes DIR/accepted.jsonl, DIR/rejected.jsonl, DIR/report.json, DIR/report.md and PNG plots
(SPEC.md); every input line ends in exactly one of the two JSONL files, lines that are not a
valid trace as `malformed_record`.

    report = run(Path("traces.jsonl"), Path("out/"), FilterCfg(), workers=None)  # all cores

Stages: each trace is judged alone (form, quality, correctness) in a pool of worker processes,
each trace with its own deadline: a worker stuck past it (a pathological expression that
math-verify's alarm cannot interrupt, say) is killed and replaced and the trace is rejected as
`verify_timeout`. Then, over all traces: duplicate completions and problems, contamination,
the pass-rate band and the k shortest correct traces per problem. Outputs are sorted by input
line, so they do not depend on the number of workers.

Reasons beyond SPEC.md's list: `too_short` (under `min_completion_tokens`), `verify_timeout` (the
trace's worker was killed at its deadline), `pass_rate_out_of_band`, `over_per_problem_limit`,
and `judge_error:<Exception>` (a checker bug; it costs that trace only).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from distill.filter import sandbox
from distill.filter.dedup import Decontaminator, find_duplicates, load_eval_texts, normalise
from distill.filter.jail import scrub_environment
from distill.filter.length import check_tokenizer, student_tokens
from distill.filter.quality import estimate_tokens, quality_reasons
from distill.filter.verify import check_answer, extract_answer
from distill.r1 import split_r1
from distill.recipe import FilterCfg
from distill.records import Trace, iter_lines, parse_record, write_jsonl

T = TypeVar("T")
ANSWER_REASONS = {"wrong_answer", "no_answer", "tests_failed", "unparseable_gold", "verify_timeout"}


def n_tokens(trace: Trace) -> int:
    """Completion length in tokens: the teacher's count, else an estimate (words and punctuation)."""
    if trace.completion_tokens is not None:
        return trace.completion_tokens
    return estimate_tokens((trace.reasoning_content or "") + trace.completion)


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


def _judge_timed(trace: Trace, cfg: FilterCfg) -> tuple[list[str], float]:
    start = time.monotonic()
    try:
        reasons = judge(trace, cfg)
    except Exception as e:  # noqa: BLE001 -- a checker bug on odd input must cost one trace, not the run
        reasons = [f"judge_error:{type(e).__name__}"]
    return reasons, time.monotonic() - start


_WORKER_CFG: FilterCfg | None = None


def _init_worker(cfg_json: str) -> None:
    global _WORKER_CFG
    scrub_environment()  # no teacher key or hub token in a process that runs the judge
    _WORKER_CFG = FilterCfg.model_validate_json(cfg_json)


def _judge_line(line: str) -> tuple[list[str], float]:
    # Workers get the raw JSON line and the config once at start: pickling a str is far cheaper
    # for the parent than pickling a pydantic model per trace, and parsing then runs in parallel.
    trace = parse_record(line, Trace)
    return _judge_timed(trace, _WORKER_CFG)


@dataclass
class Item:
    line: int
    trace: Trace | None  # None: malformed
    raw: str = ""  # the line as read
    error: str = ""
    reasons: list[str] | None = None
    seconds: float = 0.0


def read_items(path: Path) -> list[Item]:
    """Every non-blank line as an Item, a torn last line included (it is malformed too)."""
    items = []
    for n, text, _complete in iter_lines(path):
        if not text.strip():
            continue
        rec = parse_record(text, Trace, n)
        if isinstance(rec, Trace):
            items.append(Item(n, rec, text))
        else:
            items.append(Item(n, None, rec.raw, rec.reason, ["malformed_record"]))
    return items


def judge_all(items: list[Item], cfg: FilterCfg, workers: int | None = None, progress: bool = True,
              meanwhile: Callable[[], T] | None = None) -> T | None:
    """Fill `reasons` and `seconds` of every valid item, in a process pool when workers > 1.

    `meanwhile` runs in this process while the workers judge (its result is returned), so work
    that does not need verdicts (dedup, decontamination) uses the time the parent would idle."""
    from rich.progress import Progress

    todo = [it for it in items if it.trace is not None]
    workers = workers or os.cpu_count() or 1
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"judging traces ({workers} processes)", total=len(todo))
        if workers == 1:
            # One process: math-verify's own alarms still bound each call (main thread).
            for it in todo:
                it.reasons, it.seconds = _judge_timed(it.trace, cfg)
                bar.advance(task)
            return meanwhile() if meanwhile else None
        from concurrent.futures import TimeoutError as FutureTimeout

        from pebble import ProcessPool

        with ProcessPool(max_workers=workers, initializer=_init_worker, initargs=(cfg.model_dump_json(),)) as pool:
            try:
                futures = [(it, pool.schedule(_judge_line, args=(it.raw,), timeout=deadline_s(it.trace, cfg)))
                           for it in todo]
                result = meanwhile() if meanwhile else None
            except BaseException:
                pool.stop()  # do not wait for thousands of verdicts nobody will read
                raise
            for it, fut in futures:
                try:
                    it.reasons, it.seconds = fut.result()
                except FutureTimeout:
                    it.reasons, it.seconds = ["verify_timeout"], deadline_s(it.trace, cfg)
                except Exception as e:  # noqa: BLE001 -- a worker that died (out of memory, signal)
                    it.reasons = [f"judge_error:{type(e).__name__}"]
                bar.advance(task)
        return result


def problem_checks(items: list[Item], cfg: FilterCfg, eval_texts: list[str]) -> dict:
    """Duplicate and contaminated problems (problem text only, no verdicts needed)."""
    problems: dict[str, str] = {}
    for it in items:
        if it.trace is not None:
            problems.setdefault(it.trace.problem_id, it.trace.problem)
    dups = find_duplicates(list(problems.items()), cfg.near_dup_threshold) if cfg.dedup else {}
    contaminated: set[str] = set()
    if eval_texts:
        deco = Decontaminator(eval_texts, cfg.decontaminate_ngram, cfg.decontaminate_same_numbers)
        contaminated = {pid for pid, text in problems.items() if deco.contaminated(text)}
    return {"duplicate_problems": dups, "contaminated_problems": sorted(contaminated)}


def _mark_problem_level(items: list[Item], info: dict) -> None:
    """Add `duplicate` (repeated completions or keys, duplicate problems) and `contaminated`."""
    seen_keys: set[tuple[str, int]] = set()
    seen_text: set[tuple[str, str]] = set()
    dups, contaminated = info["duplicate_problems"], set(info["contaminated_problems"])
    for it in items:
        if it.trace is None:
            continue
        t = it.trace
        text_key = (t.problem_id, normalise(t.completion))
        if t.key in seen_keys or (not it.reasons and text_key in seen_text) or t.problem_id in dups:
            it.reasons.append("duplicate")
        seen_keys.add(t.key)
        seen_text.add(text_key)
        if t.problem_id in contaminated:
            it.reasons.append("contaminated")


def _select(items: list[Item], cfg: FilterCfg) -> dict[str, float]:
    """Pass-rate band and the k shortest correct traces per problem; returns each pass rate."""
    by_problem: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        if it.trace is not None:
            by_problem[it.trace.problem_id].append(it)
    rates = {}
    for pid, group in by_problem.items():
        # The teacher's solve rate: traces whose answer was right, whatever else was wrong.
        rates[pid] = sum(not (set(it.reasons) & ANSWER_REASONS) for it in group) / len(group)
        good = [it for it in group if not it.reasons]
        if cfg.pass_rate_band and not cfg.pass_rate_band[0] <= rates[pid] <= cfg.pass_rate_band[1]:
            for it in good:
                it.reasons.append("pass_rate_out_of_band")
            continue
        good.sort(key=lambda it: (n_tokens(it.trace), it.trace.sample_index, it.line))
        for it in good[cfg.max_per_problem:] if cfg.max_per_problem else []:
            it.reasons.append("over_per_problem_limit")
    return rates


def run(traces_path: Path, out_dir: Path, cfg: FilterCfg, workers: int | None = None,
        progress: bool = True) -> dict:
    """Judge every line of `traces_path`; write accepted/rejected JSONL, report.json/.md and plots."""
    from distill.filter import report as filter_report

    started = time.monotonic()
    out_dir = Path(out_dir)
    if cfg.max_length:
        check_tokenizer(cfg.tokenizer)
    items = read_items(Path(traces_path))
    eval_texts, eval_counts = load_eval_texts(cfg.decontaminate) if cfg.decontaminate else ([], {})
    problem_info = judge_all(items, cfg, workers, progress, meanwhile=lambda: problem_checks(items, cfg, eval_texts))
    problem_info["eval_sets"] = eval_counts
    _mark_problem_level(items, problem_info)
    rates = _select(items, cfg)
    accepted, rejected = [], []
    for it in sorted(items, key=lambda it: it.line):
        if it.trace is None:
            rejected.append({"line": it.line, "raw": it.raw, "error": it.error,
                             "verdict": {"accepted": False, "reasons": ["malformed_record"]}})
            continue
        row = it.trace.model_dump(exclude_none=True)
        row["verdict"] = {"accepted": not it.reasons, "reasons": it.reasons}
        (rejected if it.reasons else accepted).append(row)
    write_jsonl(out_dir / "accepted.jsonl", accepted)
    write_jsonl(out_dir / "rejected.jsonl", rejected)
    return filter_report.write(out_dir, items, accepted, rejected, cfg, rates=rates,
                               problem_info=problem_info, workers=workers or os.cpu_count() or 1,
                               seconds=time.monotonic() - started, n_tokens=n_tokens)
