"""Rejection filter: keep only correct, well-formed, clean traces and say why the rest went.

Writes DIR/accepted.jsonl, DIR/rejected.jsonl and DIR/report.json (SPEC.md); every input line
ends in exactly one of the two files, malformed lines as `malformed_record`.

    report = run(Path("traces.jsonl"), Path("out/"), FilterCfg())
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from distill.recipe import FilterCfg
from distill.records import BadLine, Trace, Verdict, read_records, write_json, write_jsonl
from distill.verify import check_answer, extract_answer, split_r1


def n_tokens(trace: Trace) -> int:
    """Completion length in tokens: the teacher's count, else a whitespace estimate."""
    return trace.completion_tokens if trace.completion_tokens is not None else len(trace.completion.split())


def is_repetitive(text: str, n: int = 8, max_share: float = 0.3, min_words: int = 64) -> bool:
    """A looping chain: one word n-gram covering more than `max_share` of all n-grams."""
    words = text.split()
    if len(words) < min_words:
        return False
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return grams.most_common(1)[0][1] * n / len(words) > max_share


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def judge(trace: Trace, cfg: FilterCfg) -> list[str]:
    """All reasons to reject one trace; [] means accepted."""
    reasons: list[str] = []
    if trace.finish_reason == "length":
        reasons.append("truncated")
    parts = split_r1(trace.completion)
    if cfg.require_think:
        reasons += parts.form
    if parts.reasoning is not None and is_repetitive(parts.reasoning):
        reasons.append("repetition")
    if cfg.max_completion_tokens and n_tokens(trace) > cfg.max_completion_tokens:
        reasons.append("too_long")
    predicted = extract_answer(parts.answer, trace.domain)
    reasons += check_answer(trace.domain, trace.answer, predicted, trace.choices, cfg.verify_timeout_s)
    return reasons


def _lengths(values: list[int]) -> dict:
    if not values:
        return {"count": 0}
    q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return {"count": len(values), "min": min(values), "max": max(values),
            "mean": round(statistics.fmean(values), 1), "p10": q[0], "p50": q[4], "p90": q[8]}


def run(traces_path: Path, out_dir: Path, cfg: FilterCfg) -> dict:
    """Judge every line of `traces_path`; write accepted/rejected JSONL and report.json."""
    out_dir = Path(out_dir)
    good: dict[str, list[Trace]] = defaultdict(list)
    rejected: list[dict] = []
    seen: set[tuple[str, str]] = set()
    by_reason: Counter = Counter()
    by_domain: dict[str, Counter] = defaultdict(Counter)
    total = 0
    for rec in read_records(traces_path, Trace):
        total += 1
        if isinstance(rec, BadLine):
            rejected.append({"line": rec.line, "raw": rec.raw, "error": rec.reason,
                             "verdict": {"accepted": False, "reasons": ["malformed_record"]}})
            by_reason["malformed_record"] += 1
            continue
        reasons = judge(rec, cfg)
        key = (rec.problem_id, _normalise(rec.completion))
        if not reasons and key in seen:
            reasons = ["duplicate"]
        seen.add(key)
        by_domain[rec.domain]["input"] += 1
        if reasons:
            rec.verdict = Verdict(accepted=False, reasons=reasons)
            rejected.append(rec.model_dump(exclude_none=True))
            by_reason.update(reasons)
            by_domain[rec.domain]["rejected"] += 1
        else:
            rec.verdict = Verdict(accepted=True)
            good[rec.problem_id].append(rec)

    accepted: list[Trace] = []
    for traces in good.values():  # keep the k shortest correct traces of each problem
        traces.sort(key=lambda t: (n_tokens(t), t.sample_index))
        keep = traces[: cfg.max_per_problem] if cfg.max_per_problem else traces
        for t in traces[len(keep):]:
            t.verdict = Verdict(accepted=False, reasons=["over_per_problem_limit"])
            rejected.append(t.model_dump(exclude_none=True))
            by_reason["over_per_problem_limit"] += 1
            by_domain[t.domain]["rejected"] += 1
        accepted += keep
    for t in accepted:
        by_domain[t.domain]["accepted"] += 1
    accepted.sort(key=lambda t: t.key)

    write_jsonl(out_dir / "accepted.jsonl", accepted)
    write_jsonl(out_dir / "rejected.jsonl", rejected)
    report = {
        "input": total,
        "accepted": len(accepted),
        "rejected": len(rejected),
        "acceptance_rate": round(len(accepted) / total, 4) if total else 0.0,
        "by_reason": dict(by_reason.most_common()),
        "by_domain": {d: dict(c) for d, c in by_domain.items()},
        "problems_with_accepted": len(good),
        "lengths": {
            "accepted": _lengths([n_tokens(t) for t in accepted]),
            "rejected": _lengths([r.get("completion_tokens") or len(r.get("completion", r.get("raw", "")).split())
                                  for r in rejected]),
        },
    }
    write_json(out_dir / "report.json", report)
    return report
