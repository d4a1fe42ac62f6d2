"""The run report: `data/runs/<recipe>/report.md` (and `report.html`, one self-contained file) with
PNG figures in `data/runs/<recipe>/figures/`, built from what the stages left in the run folder.

Figures: funnel.png (problems -> traces -> accepted, rejections by reason), lengths.png (trace
lengths), loss.png, accuracy.png (base, student, each quant; pass@1 ± one standard error), budget.png (accuracy vs thinking
budget), time.png (seconds and cost per stage). A figure whose data is missing is left out.

    path = build(Path("data/runs/smol"), Path("export/smol"))
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from distill.records import write_text
from distill.runs import RunData, accuracy_rows

FIGURES = ["funnel", "lengths", "loss", "accuracy", "budget", "time"]
ORANGE, BLUE, GREY, GREEN = "#e8743b", "#3b6fe8", "#9aa0a6", "#2e9e5b"


def _figure(width: float = 7.0, height: float = 3.6, ncols: int = 1):
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg renders the PNG

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.subplots(1, ncols) if ncols > 1 else fig.subplots()


def plot_funnel(d: RunData):
    rep = d.filter_report
    if not rep:
        return None
    fig, (left, right) = _figure(9, 3.6, 2)
    names = ["problems", "traces", "accepted"]
    values = [d.problems_count or 0, rep.get("input", 0), rep.get("accepted", 0)]
    bars = left.barh(names[::-1], values[::-1], color=[GREEN, BLUE, ORANGE])
    left.bar_label(bars, labels=[str(v) for v in values[::-1]], padding=2, fontsize=8)
    left.set_title(f"funnel: {rep.get('acceptance_rate', 0):.1%} of traces accepted")
    reasons = rep.get("by_reason", {})
    if reasons:
        items = sorted(reasons.items(), key=lambda kv: kv[1])
        rb = right.barh([k for k, _ in items], [v for _, v in items], color=GREY)
        right.bar_label(rb, labels=[str(v) for _, v in items], padding=2, fontsize=8)
    right.set_title("rejected traces by reason")
    return fig


def plot_lengths(d: RunData):
    acc, rej = d.trace_lengths()
    if not acc and not rej:
        return None
    fig, ax = _figure()
    bins = max(5, min(40, len(set(acc + rej))))
    if rej:
        ax.hist(rej, bins=bins, alpha=0.6, color=GREY, label=f"rejected ({len(rej)})")
    if acc:
        ax.hist(acc, bins=bins, alpha=0.8, color=ORANGE, label=f"accepted ({len(acc)})")
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("traces")
    ax.set_title("teacher trace lengths")
    ax.legend()
    return fig


def plot_loss(d: RunData):
    losses = (d.train_summary or {}).get("losses") or []
    if not losses:
        return None
    fig, ax = _figure()
    step = (d.train_summary or {}).get("logging_steps") or 1
    ax.plot([step * (i + 1) for i in range(len(losses))], losses, marker="o", color=BLUE, label="training")
    eval_loss = d.train_summary.get("eval_loss")
    if isinstance(eval_loss, (int, float)):  # measured once, on the held-out split, after the last step
        ax.plot([step * len(losses)], [eval_loss], marker="D", ls="", color=ORANGE, label="held-out")
        ax.legend(fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(f"SFT loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    ax.grid(alpha=0.3)
    return fig


def bar_names(rows: list[dict]) -> list[str]:
    """Each row's label, and under it how many problems it was scored on where that is fewer than the
    most any row has (eval.base_limit, export.eval_limit): bars of unequal samples must say so."""
    counts = [r["problems"] for r in rows if isinstance(r.get("problems"), int)]
    return [r["label"] + (f"\n{r['problems']} problems" if isinstance(r.get("problems"), int)
                          and r["problems"] < max(counts) else "") for r in rows]


def plot_accuracy(rows: list[dict]):
    """pass@1 per evaluated model with ± one standard error (none drawn where a run saved none)."""
    rows = [r for r in rows if r.get("pass@1") is not None]
    if not rows:
        return None
    fig, ax = _figure(max(5.0, 1.1 * len(rows) + 2), 3.6)
    colors = [GREY if r["stage"] == "base" else ORANGE if r["stage"] in ("student", "round") else BLUE for r in rows]
    errors = [100 * (r.get("pass@1_se") or 0) for r in rows]
    bars = ax.bar(bar_names(rows), [100 * r["pass@1"] for r in rows], color=colors,
                  yerr=errors if any(errors) else None, capsize=4, ecolor="#333333")
    ax.bar_label(bars, labels=[_pm(r.get("pass@1"), r.get("pass@1_se")) for r in rows], padding=2, fontsize=8)
    top = max(100 * r["pass@1"] + e for r, e in zip(rows, errors))
    ax.set_ylim(0, max(top * 1.25, 10))
    ax.set_ylabel("pass@1 (%), ± 1 standard error")
    ax.set_title("accuracy by stage")
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def plot_budget(curve: dict | None):
    points = (curve or {}).get("points") or []
    if not points:
        return None
    fig, (left, right) = _figure(9, 3.6, 2)
    budgets = [p["budget"] for p in points]
    left.errorbar(budgets, [100 * p["pass@1"] for p in points], yerr=[100 * (p.get("pass@1_se") or 0) for p in points],
                  marker="o", color=ORANGE, capsize=3)
    left.set_xscale("log", base=2)
    left.set_xticks(budgets, [str(b) for b in budgets])
    left.set_xlabel("thinking budget (tokens)")
    left.set_ylabel("pass@1 (%)")
    on = f", {curve['problems']} problems" if curve.get("problems") else ""
    left.set_title(f"accuracy vs thinking budget ({curve.get('model', '')}{on})")
    left.grid(alpha=0.3)
    right.plot(budgets, [p.get("mean_thinking_tokens", 0) for p in points], marker="s", color=BLUE,
               label="mean thinking tokens")
    right.plot(budgets, budgets, ls="--", color=GREY, label="budget")
    right.set_xscale("log", base=2)
    right.set_xticks(budgets, [str(b) for b in budgets])
    right.set_xlabel("thinking budget (tokens)")
    right.set_title("thinking used")
    right.legend(fontsize=8)
    return fig


def plot_time(d: RunData):
    stages = [(s, e) for s, e in d.stages.items() if isinstance(e, dict) and "seconds" in e]
    if not stages:
        return None
    fig, ax = _figure()
    bars = ax.barh([s for s, _ in stages][::-1], [e["seconds"] for _, e in stages][::-1], color=BLUE)
    labels = [f"{e['seconds']:.0f}s" + (f"  ${e['cost_usd']:.2f}" if e.get("cost_usd") is not None else "")
              for _, e in stages][::-1]
    ax.bar_label(bars, labels=labels, padding=2, fontsize=8)
    ax.set_xlabel("seconds (last run of each stage)")
    ax.set_title("time (and cost, where known) per stage")
    return fig


def figures(d: RunData) -> dict:
    """name -> matplotlib Figure (None where the run has no data for it)."""
    return {"funnel": plot_funnel(d), "lengths": plot_lengths(d), "loss": plot_loss(d),
            "accuracy": plot_accuracy(accuracy_rows(d)), "budget": plot_budget(d.budgets), "time": plot_time(d)}


def _blocks(d: RunData, drawn: dict[str, Path]) -> list[tuple]:
    """The report as blocks (kind, ...), rendered to Markdown and HTML alike."""
    out: list[tuple] = [("h1", f"Run report: {d.name}")]
    rows = accuracy_rows(d)
    if rows:
        out += [("h2", "Accuracy by stage"),
                ("table", ["stage", "model", "problems", "pass@1", "truncated", "closed think", "mean tokens",
                           "thinking tokens"],
                 [[r["stage"], r["label"], r.get("problems", ""), _pm(r.get("pass@1"), r.get("pass@1_se")) + _vs_f16(r),
                   _pct(r.get("truncation_rate")), _pct(r.get("closed_think_rate")),
                   r.get("mean_completion_tokens", ""), _num(r.get("mean_thinking_tokens"))] for r in rows])]
    if d.rounds:
        def _round_eval(row):  # the last round's student is the run's own student
            return row.get("eval") or (d.results.get("student") if row is d.rounds[-1] else None) or {}
        out += [("h2", "STaR rounds"),
                ("table", ["round", "new traces from", "new traces accepted", "trained on", "pass@1"],
                 [[row["round"], row.get("new_traces_from", ""), row.get("accepted", row["trained_on"]),
                   row["trained_on"], _pm(_round_eval(row).get("pass@1"), _round_eval(row).get("pass@1_se"))]
                  for row in d.rounds])]
    sections = {"funnel": "Funnel", "lengths": "Trace lengths", "loss": "Training loss",
                "accuracy": "Accuracy by stage (figure)", "budget": "Inference-time scaling", "time": "Time per stage"}
    for name, title in sections.items():
        if name in drawn:
            out += [("h2", title), ("img", drawn[name], title)]
        if name == "loss" and d.train_summary:
            out.append(_training_table(d.train_summary))
        if name == "budget" and d.budgets:
            out.append(("table", ["budget", "pass@1", "mean thinking tokens", "forced"],
                        [[p["budget"], _pm(p["pass@1"], p.get("pass@1_se")), p.get("mean_thinking_tokens", ""),
                          _pct(p.get("forced_rate"))] for p in d.budgets["points"]]))
    if d.stages:
        out.append(("table", ["stage", "seconds", "cost (USD)"],
                    [[s, e.get("seconds", ""), e.get("cost_usd", "")] for s, e in d.stages.items()
                     if isinstance(e, dict)]))
    return out


def _training_table(summary: dict) -> tuple:
    """What training saw: examples kept, those dropped for being longer than `train.max_length` (never
    truncated, so a reader must see how many were lost), the held-out split and its loss."""
    data, losses = summary.get("data") or {}, summary.get("losses") or []
    return ("table", ["steps", "examples trained", "dropped (over train.max_length)", "held-out examples",
                      "training loss", "held-out loss"],
            [[summary.get("steps", ""), data.get("kept", ""), data.get("dropped_over_max_length", ""),
              data.get("eval_examples", ""), f"{losses[0]:.3f} → {losses[-1]:.3f}" if losses else "–",
              _num(summary.get("eval_loss"), 3)]])


def _pct(v) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "–"


def _pm(v, se) -> str:
    """A rate with its standard error: "42.5% ± 7.8%" (the rate alone where none was saved)."""
    return _pct(v) + (f" ± {100 * se:.1f}%" if isinstance(se, (int, float)) and isinstance(v, (int, float)) else "")


def _vs_f16(row: dict) -> str:
    """A quant's paired difference to F16: " (-2.5 ± 1.8 points vs F16)"."""
    d, se = row.get("vs_f16"), row.get("vs_f16_se")
    return f" ({100 * d:+.1f} ± {100 * (se or 0):.1f} points vs F16)" if isinstance(d, (int, float)) else ""


def _num(v, digits: int | None = None) -> str:
    if v is None or v == "":
        return "–"
    return f"{v:.{digits}f}" if digits is not None and isinstance(v, (int, float)) else str(v)


def to_markdown(blocks: list[tuple], base: Path) -> str:
    lines = []
    for b in blocks:
        if b[0] in ("h1", "h2"):
            lines += [("# " if b[0] == "h1" else "## ") + b[1], ""]
        elif b[0] == "img":
            lines += [f"![{b[2]}]({b[1].relative_to(base).as_posix()})", ""]
        elif b[0] == "table":
            lines.append("| " + " | ".join(b[1]) + " |")
            lines.append("|" + " --- |" * len(b[1]))
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in b[2]]
            lines.append("")
    return "\n".join(lines)


def to_html(blocks: list[tuple]) -> str:
    """One self-contained page: the PNGs are embedded, so the file can be mailed or opened anywhere."""
    body = []
    for b in blocks:
        if b[0] in ("h1", "h2"):
            body.append(f"<{b[0]}>{html.escape(b[1])}</{b[0]}>")
        elif b[0] == "img":
            data = base64.b64encode(b[1].read_bytes()).decode()
            body.append(f'<img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">')
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
             "img{max-width:100%}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}")
    title = html.escape(blocks[0][1]) if blocks else "run report"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def build(run_dir: Path, export_dir: Path | None = None, html_too: bool = True) -> Path:
    """Draw every figure the run has data for and write report.md (+ report.html); returns report.md."""
    d = RunData(Path(run_dir), export_dir)
    fig_dir = d.dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for name, fig in figures(d).items():
        path = fig_dir / f"{name}.png"
        if fig is None:
            path.unlink(missing_ok=True)  # stale figure of an older run
            continue
        fig.savefig(path)
        drawn[name] = path
    blocks = _blocks(d, drawn)
    write_text(d.dir / "report.md", to_markdown(blocks, d.dir))
    if html_too:
        write_text(d.dir / "report.html", to_html(blocks))
    return d.dir / "report.md"

