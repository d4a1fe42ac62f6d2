"""A problem mixture: several sources, each mapped by its layout, counted per source, stable ids.

Each source gives either a `limit` (at most that many problems) or a `weight` (its share of
`problems.limit`, as open-r1's dataset mixtures and Mixture-of-Thoughts' math/code/science split).
A limited source is read in a seeded shuffled order and stops once it has kept its count, so the
count survives skipped rows: rows failing the source's `where` filters, rows without a checkable
answer or tests, duplicates of a problem kept earlier (in any source), and problems that the
caller's checks reject (a gold answer the verifier cannot parse, contamination with an eval set).

A problem's id is a hash of its normalised text, so a resumed run finds its traces whatever the
order of the rows or the sources, and the same problem from two sources is one problem.

    problems, report = build(recipe.problems, checks=Checks(contaminated=..., gold_ok=...))
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from distill.errors import DistillError
from distill.problems.bundled import load_split
from distill.problems.layouts import LAYOUTS, matches
from distill.problems.sources import fingerprint, open_rows
from distill.records import Problem


def normalise_text(text: str) -> str:
    """What a problem id hashes: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def problem_id(domain: str, text: str) -> str:
    return f"{domain}-{hashlib.sha256(normalise_text(text).encode()).hexdigest()[:16]}"


@dataclass
class Checks:
    """What the caller judges about a mapped problem (kept out of this shared module: the filter
    owns the verifier and the decontaminator). Each returns a skip reason, or None to keep it."""

    gold: Callable[[Problem], str | None] | None = None  # e.g. "unparseable_gold"
    contaminated: Callable[[Problem], str | None] | None = None  # e.g. "contaminated:MATH-500"


@dataclass
class SourceReport:
    name: str
    dataset: str
    layout: str
    requested: int | None
    rows_read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    domains: Counter = field(default_factory=Counter)
    removed: dict[str, list[str]] = field(default_factory=dict)  # a few contaminated problems, per eval set

    def skip(self, reason: str, problem: Problem | None) -> None:
        self.skipped[reason] += 1
        if problem is not None and reason.startswith("contaminated") and len(self.removed.get(reason, [])) < 3:
            self.removed.setdefault(reason, []).append(problem.problem[:160])

    @property
    def answer_parse_rate(self) -> float | None:
        """Of the rows the filters let through, the share whose gold answer (or tests) is usable."""
        bad = sum(n for r, n in self.skipped.items() if r in ANSWER_SKIPS)
        judged = self.kept + bad + sum(n for r, n in self.skipped.items() if r in LATER_SKIPS)
        return round((judged - bad) / judged, 4) if judged else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset, "layout": self.layout, "requested": self.requested,
                "rows_read": self.rows_read, "kept": self.kept, "skipped": dict(self.skipped),
                "domains": dict(self.domains), "answer_parse_rate": self.answer_parse_rate, "removed": self.removed,
                "shortfall": max(0, (self.requested or 0) - self.kept) if self.requested else 0}


# Skip reasons that say the row's answer (or tests) cannot be checked, for the parse rate.
ANSWER_SKIPS = {"no_answer", "proof", "unparseable_gold", "no_tests", "tests_incomplete", "no_choices",
                "needs_checker", "interactive", "file_io", "invalid_record"}
LATER_SKIPS = {"duplicate"}  # judged fine, dropped for another reason


def targets(cfg) -> list[int | None]:
    """Problems to keep per source: its `limit`, or its share of `problems.limit` by weight
    (largest remainders, so the shares add up to the limit exactly)."""
    if not any(s.weight is not None for s in cfg.sources):
        return [s.limit for s in cfg.sources]
    total = sum(s.weight for s in cfg.sources)
    exact = [cfg.limit * s.weight / total for s in cfg.sources]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[:cfg.limit - sum(counts)]:
        counts[i] += 1
    return counts


def source_name(src) -> str:
    return src.name or re.split(r"[/\\]", src.dataset.rstrip("/\\"))[-1]


def _problem(fields: dict, row: dict, src, name: str, keeps_ids: bool, layout_domain: str | None) -> Problem:
    domain = src.domain or fields.get("domain") or layout_domain or "math"
    if src.max_tests and fields.get("tests"):
        fields["tests"] = fields["tests"][:src.max_tests]
    if keeps_ids:  # our own records: their id, split and source stay
        return Problem.model_validate({"split": "train", "source": name, **fields, "domain": domain,
                                       "id": str(fields.get("id") or problem_id(domain, fields["problem"]))})
    record = {**fields, "domain": domain, "split": "train", "source": name,
              "id": problem_id(domain, fields["problem"])}
    if row.get("source"):
        record["origin"] = str(row["source"])  # the row's own source (numina: olympiads, aops_forum, ...)
    return Problem.model_validate(record)


def _read_source(src, name: str, want: int | None, seed: int, seen: set[str], checks: Checks,
                 report: SourceReport) -> list[Problem]:
    layout = LAYOUTS[src.layout]
    where = {**layout.default_where, **src.where}
    columns = set(layout.columns) | set(where) if layout.columns else ()
    rows = open_rows(src.dataset, src.config, src.split, src.streaming, columns, shuffle=want is not None,
                     seed=seed, revision=src.revision, required=[c for c, v in src.where.items() if v is not None])
    kept: list[Problem] = []
    for row in rows:
        if want is not None and len(kept) >= want:
            break
        report.rows_read += 1
        reason = None if matches(row, where) else "filtered"
        mapped = layout.map(row) if reason is None else None
        reason = reason or mapped.skip
        problem = None
        if reason is None:
            try:
                problem = _problem(dict(mapped.fields), row, src, name, layout.keeps_ids, layout.domain)
            except ValidationError:
                reason = "invalid_record"
        if problem is not None and problem.id in seen:
            reason = "duplicate"
        for check in (checks.gold, checks.contaminated):
            if reason is None and check is not None:
                reason = check(problem)
        if reason is not None:
            report.skip(reason, problem)
            continue
        seen.add(problem.id)
        kept.append(problem)
        report.domains[problem.domain] += 1
    report.kept = len(kept)
    return kept


def interleave(groups: list[list[Problem]]) -> list[Problem]:
    """One list in which every source keeps its share all along: a run stopped early (or a
    `--set problems.limit` lowered later) still holds the mixture, not just the first source."""
    keyed = [((i + 0.5) / len(g), s, p) for s, g in enumerate(groups) for i, p in enumerate(g)]
    return [p for _, _, p in sorted(keyed, key=lambda t: (t[0], t[1]))]


def build(cfg, checks: Checks | None = None) -> tuple[list[Problem], dict]:
    """The recipe's mixture (`cfg` is `recipe.problems` with `sources`) and its report."""
    checks = checks or Checks()
    seen: set[str] = set()
    groups, reports = [], []
    for k, (src, want) in enumerate(zip(cfg.sources, targets(cfg))):
        name = source_name(src)
        report = SourceReport(name=name, dataset=src.dataset, layout=src.layout, requested=want)
        groups.append(_read_source(src, name, want, cfg.seed + k, seen, checks, report))
        reports.append(report)
    problems = interleave(groups)
    if not problems:
        raise DistillError("the problem sources gave no problems; run `distill data RECIPE` to see what each "
                           "source skipped and why")
    return problems, {"problems": len(problems), "by_domain": dict(Counter(p.domain for p in problems)),
                      "sources": [r.to_dict() for r in reports]}


def build_problems(cfg, checks: Checks | None = None) -> tuple[list[Problem], dict]:
    """The recipe's problems (`cfg` is `recipe.problems`) and what became of every row: its mixture
    of `sources`, or the split of its JSONL `path` (screened only by `checks.contaminated`)."""
    checks = checks or Checks()
    if cfg.sources:
        return build(cfg, checks)
    report = SourceReport(name=cfg.path.rsplit("/", 1)[-1], dataset=cfg.path, layout="problems",
                          requested=cfg.limit)
    chosen = []
    for problem in load_split(cfg.path, cfg.split, None):
        if cfg.limit and len(chosen) >= cfg.limit:
            break
        report.rows_read += 1
        reason = checks.contaminated(problem) if checks.contaminated else None
        if reason:
            report.skip(reason, problem)
            continue
        chosen.append(problem)
        report.domains[problem.domain] += 1
    report.kept = len(chosen)
    return chosen, {"problems": len(chosen), "by_domain": dict(report.domains), "sources": [report.to_dict()]}


def sources_key(cfg) -> list[str]:
    """Fingerprints of the sources' data, for the problems stage key."""
    return [fingerprint(s.dataset, s.revision) for s in cfg.sources]
