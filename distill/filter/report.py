"""The filter's report: report.json (SPEC.md fields and more), report.md and PNG plots, computed
from the on-disk trace index by SQL (counts, quantiles, histogram bins), so a million traces cost
no more memory than a thousand.

    filter_report.write(out_dir, index, cfg, problem_info=..., outputs=..., workers=2, seconds=9.5)

Plots use matplotlib's Agg backend (no display needed): `rejections_by_reason.png` and
`lengths.png` (completion tokens of accepted vs rejected traces).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from distill.records import write_json, write_text

ACCEPTED = "error IS NULL AND reasons = '' AND dup = 0 AND cont = 0 AND band = 0 AND over = 0"
LISTED = 10_000  # problem ids listed in report.json at most (the counts are always whole)


def _quantiles(index, column: str, where: str, count: int, digits: int | None = None) -> dict:
    """count/min/max/mean and p10/p50/p90 as `statistics.quantiles(n=10)` gives them, by reading only
    the order statistics it needs."""
    if not count:
        return {"count": 0}

    def nth(k: int):
        value = index.query(f"SELECT {column} FROM {where} ORDER BY {column} LIMIT 1 OFFSET ?", (k,))[0][0]
        return round(value, digits) if digits is not None else value

    lo, hi, mean = index.query(f"SELECT MIN({column}), MAX({column}), AVG({column}) FROM {where}")[0]
    if count == 1:
        q = [nth(0)] * 9
    else:
        m, q = count + 1, []
        for i in (1, 5, 9):  # exclusive method, exact integer steps
            j = min(max(i * m // 10, 1), count - 1)
            delta = i * m - j * 10
            q.append((nth(j - 1) * (10 - delta) + nth(j) * delta) / 10)
        q = [q[0]] * 4 + [q[1]] * 4 + [q[2]]
    if digits is not None:
        lo, hi = round(lo, digits), round(hi, digits)
    return {"count": count, "min": lo, "max": hi, "mean": round(mean, 1), "p10": q[0], "p50": q[4], "p90": q[8]}


def _histogram(index, bins_max: int = 40) -> tuple[list[float], list[int], list[int]] | None:
    """Equal-width bins over the tokens of all valid traces: (edges, accepted counts, rejected counts)."""
    lo, hi, distinct = index.query("SELECT MIN(n_tokens), MAX(n_tokens) + 1, COUNT(DISTINCT n_tokens) "
                                   "FROM traces WHERE error IS NULL")[0]
    if lo is None:
        return None
    bins = min(bins_max, max(5, distinct))
    width = (hi - lo) / bins
    acc, rej = [0] * bins, [0] * bins
    for k, accepted, n in index.query(
            f"SELECT MIN(CAST((n_tokens - ?) / ? AS INTEGER), ?), {ACCEPTED}, COUNT(*) FROM traces "
            "WHERE error IS NULL GROUP BY 1, 2", (lo, width, bins - 1)):
        (acc if accepted else rej)[k] += n
    return [lo + width * i for i in range(bins + 1)], acc, rej


def _plots(out_dir: Path, by_reason: Counter, hist) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(by_reason) + 1)))
    names = [r for r, _ in by_reason.most_common()][::-1]
    ax.barh(names, [by_reason[r] for r in names], color="#c0504d")
    ax.set_xlabel("traces")
    ax.set_title("Rejections by reason (a trace may have several)")
    fig.tight_layout()
    fig.savefig(out_dir / "rejections_by_reason.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    if hist:
        edges, acc, rej = hist
        ax.stairs(rej, edges, fill=True, alpha=0.6, label=f"rejected ({sum(rej)})", color="#c0504d")
        ax.stairs(acc, edges, fill=True, alpha=0.6, label=f"accepted ({sum(acc)})", color="#4f81bd")
        ax.legend()
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("traces")
    ax.set_title("Completion length: accepted vs rejected")
    fig.tight_layout()
    fig.savefig(out_dir / "lengths.png", dpi=100)
    plt.close(fig)
    return ["rejections_by_reason.png", "lengths.png"]


def _markdown(rep: dict) -> str:
    lines = ["# Filter report", "",
             (f"{rep['accepted']} of {rep['input']} traces accepted ({rep['acceptance_rate']:.1%}); "
              f"{rep['rejected']} rejected; {rep['problems_with_accepted']} problems keep at least one trace."), "",
             "## Rejections by reason", "", "| reason | traces |", "| --- | ---: |"]
    lines += [f"| `{r}` | {n} |" for r, n in rep["by_reason"].items()]
    lines += ["", "![rejections](rejections_by_reason.png)", "", "## By domain", "",
              "| domain | input | accepted | rejected |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {d} | {c.get('input', 0)} | {c.get('accepted', 0)} | {c.get('rejected', 0)} |"
              for d, c in rep["by_domain"].items()]
    lines += ["", "## Completion length (tokens)", "", "| | count | min | p10 | p50 | p90 | max | mean |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k, v in rep["lengths"].items():
        lines.append(f"| {k} | " + " | ".join(str(v.get(f, "")) for f in
                                               ("count", "min", "p10", "p50", "p90", "max", "mean")) + " |")
    lines += ["", "![lengths](lengths.png)", "", "## Problems", "",
              f"- duplicate problems (exact or near): {rep['problems']['duplicates']}",
              f"- contaminated problems: {rep['problems']['contaminated']} (eval sets: {rep['problems']['eval_sets']})",
              f"- pass rate (teacher solve rate) per problem: {rep['problems']['pass_rate']}", "",
              "## Run", "",
              f"- {rep['run']['workers']} processes, {rep['run']['seconds']} s, {rep['run']['traces_per_s']} traces/s",
              (f"- slowest trace: {rep['run']['slowest_trace_s']} s (deadline per math trace "
               f"{rep['run']['math_deadline_s']} s)")]
    if rep["skipped"]:
        lines.append(f"- not inputs of this run (other settings, problems or samples): {rep['skipped']}")
    if rep.get("sandbox"):
        lines += ["", "## Code sandbox", ""] + [f"- {k}: {v}" for k, v in rep["sandbox"].items()]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, index, cfg, *, problem_info: dict, outputs: dict, workers: int, seconds: float) -> dict:
    """Build, write and return report.json; report.md and the plots beside it."""
    by_reason: Counter = Counter()
    for _line, _error, reasons in index.verdicts():
        by_reason.update(reasons)
    total = index.query("SELECT COUNT(*) FROM traces")[0][0]
    accepted, rejected = outputs["accepted.jsonl"]["lines"], outputs["rejected.jsonl"]["lines"]
    by_domain = {d: {"input": n, "accepted": a, "rejected": n - a} for d, n, a in index.query(
        f"SELECT domain, COUNT(*), SUM({ACCEPTED}) FROM traces WHERE error IS NULL GROUP BY domain ORDER BY domain")}
    n_acc, n_rej = index.query(f"SELECT SUM({ACCEPTED}), SUM(NOT ({ACCEPTED})) FROM traces WHERE error IS NULL")[0]
    n_problems = index.query("SELECT COUNT(*) FROM problems")[0][0]
    dups, contaminated = problem_info["duplicate_problems"], problem_info["contaminated_problems"]
    rep = {
        "input": total,
        "accepted": accepted,
        "rejected": rejected,
        "acceptance_rate": round(accepted / total, 4) if total else 0.0,
        "by_reason": dict(by_reason.most_common()),
        "by_domain": by_domain,
        "problems_with_accepted": index.query(f"SELECT COUNT(DISTINCT pid) FROM traces WHERE {ACCEPTED}")[0][0],
        "lengths": {"accepted": _quantiles(index, "n_tokens", f"traces WHERE {ACCEPTED}", n_acc or 0),
                    "rejected": _quantiles(index, "n_tokens", f"traces WHERE error IS NULL AND NOT ({ACCEPTED})",
                                           n_rej or 0)},
        "problems": {
            "total": n_problems,
            "duplicates": len(dups),
            "duplicate_of": dict(list(dups.items())[:LISTED]),
            "contaminated": len(contaminated),
            "contaminated_ids": contaminated[:LISTED],
            "eval_sets": problem_info["eval_sets"],
            "pass_rate": _quantiles(index, "rate", "problems", n_problems, digits=3),
            "pass_rate_band": cfg.pass_rate_band,
        },
        "skipped": problem_info.get("skipped", {}),
        "provenance": dict(index.query("SELECT COALESCE(settings, 'unrecorded'), COUNT(*) FROM traces "
                                       "WHERE error IS NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 20")),
        "outputs": outputs,
        "run": {
            "workers": workers,
            "seconds": round(seconds, 2),
            "traces_per_s": round(total / seconds, 1) if seconds else None,
            "slowest_trace_s": round(index.query("SELECT COALESCE(MAX(seconds), 0) FROM traces "
                                                 "WHERE error IS NULL")[0][0], 3),
            "math_deadline_s": 3 * cfg.verify_timeout_s + 1,
        },
        "config": cfg.model_dump(),
    }
    if index.query("SELECT 1 FROM traces WHERE domain = 'code' LIMIT 1"):
        from distill.filter.sandbox import isolation

        rep["sandbox"] = isolation(cfg.code_sandbox)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep["plots"] = _plots(out_dir, by_reason, _histogram(index))
    write_json(out_dir / "report.json", rep)
    write_text(out_dir / "report.md", _markdown(rep))
    return rep
