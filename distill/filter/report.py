"""The filter's report: report.json (SPEC.md fields and more), report.md and PNG plots.

    filter_report.write(out_dir, items, accepted, rejected, cfg, ...)  # called by filter.run

Plots use matplotlib's Agg backend (no display needed): `rejections_by_reason.png` and
`lengths.png` (completion tokens of accepted vs rejected traces).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path

from distill.records import write_json, write_text


def _lengths(values: list[int]) -> dict:
    if not values:
        return {"count": 0}
    q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return {"count": len(values), "min": min(values), "max": max(values),
            "mean": round(statistics.fmean(values), 1), "p10": q[0], "p50": q[4], "p90": q[8]}


def _plots(out_dir: Path, by_reason: Counter, acc_len: list[int], rej_len: list[int]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(by_reason) + 1)))
    names = [r for r, _ in by_reason.most_common()][::-1]
    ax.barh(names, [by_reason[r] for r in names], color="#c0504d")
    ax.set_xlabel("traces")
    ax.set_title("Rejections by reason (a trace may have several)")
    fig.tight_layout()
    fig.savefig(out_dir / "rejections_by_reason.png", dpi=100)
    plt.close(fig)
    files.append("rejections_by_reason.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    both = acc_len + rej_len
    if both:
        bins = min(40, max(5, len(set(both))))
        rng = (min(both), max(both) + 1)
        ax.hist(rej_len, bins=bins, range=rng, alpha=0.6, label=f"rejected ({len(rej_len)})", color="#c0504d")
        ax.hist(acc_len, bins=bins, range=rng, alpha=0.6, label=f"accepted ({len(acc_len)})", color="#4f81bd")
        ax.legend()
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("traces")
    ax.set_title("Completion length: accepted vs rejected")
    fig.tight_layout()
    fig.savefig(out_dir / "lengths.png", dpi=100)
    plt.close(fig)
    files.append("lengths.png")
    return files


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
    if rep.get("sandbox"):
        lines += ["", "## Code sandbox", ""] + [f"- {k}: {v}" for k, v in rep["sandbox"].items()]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, items: list, accepted: list[dict], rejected: list[dict], cfg, *, rates: dict,
          problem_info: dict, workers: int, seconds: float, n_tokens) -> dict:
    """Build, write and return report.json; report.md and the plots beside it."""
    by_reason: Counter = Counter()
    by_domain: dict[str, Counter] = defaultdict(Counter)
    acc_len, rej_len = [], []
    for it in items:
        if it.trace is None:
            by_reason["malformed_record"] += 1
            continue
        d = by_domain[it.trace.domain]
        d["input"] += 1
        d["rejected" if it.reasons else "accepted"] += 1
        by_reason.update(it.reasons)
        (rej_len if it.reasons else acc_len).append(n_tokens(it.trace))
    total = len(items)
    rate_values = list(rates.values())
    valid = [it for it in items if it.trace is not None]
    rep = {
        "input": total,
        "accepted": len(accepted),
        "rejected": len(rejected),
        "acceptance_rate": round(len(accepted) / total, 4) if total else 0.0,
        "by_reason": dict(by_reason.most_common()),
        "by_domain": {d: dict(c) for d, c in sorted(by_domain.items())},
        "problems_with_accepted": len({r["problem_id"] for r in accepted}),
        "lengths": {"accepted": _lengths(acc_len), "rejected": _lengths(rej_len)},
        "problems": {
            "total": len(rates),
            "duplicates": len(problem_info["duplicate_problems"]),
            "duplicate_of": problem_info["duplicate_problems"],
            "contaminated": len(problem_info["contaminated_problems"]),
            "contaminated_ids": problem_info["contaminated_problems"],
            "eval_sets": problem_info["eval_sets"],
            "pass_rate": _lengths([round(r, 3) for r in rate_values]) if rate_values else {"count": 0},
            "pass_rate_band": cfg.pass_rate_band,
        },
        "run": {
            "workers": workers,
            "seconds": round(seconds, 2),
            "traces_per_s": round(total / seconds, 1) if seconds else None,
            "slowest_trace_s": round(max((it.seconds for it in valid), default=0.0), 3),
            "math_deadline_s": 3 * cfg.verify_timeout_s + 1,
        },
        "config": cfg.model_dump(),
    }
    if any(it.trace.domain == "code" for it in valid):
        from distill.filter.sandbox import isolation

        rep["sandbox"] = isolation(cfg.code_sandbox)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep["plots"] = _plots(out_dir, by_reason, acc_len, rej_len)
    write_json(out_dir / "report.json", rep)
    write_text(out_dir / "report.md", _markdown(rep))
    return rep
