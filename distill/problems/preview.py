"""`distill data`: a recipe's problems before any teacher is paid: rows read and kept per source,
domains, the answer parse rate, why rows were skipped, what decontamination removed, prompt
tokens, and the most the teacher can be asked to write.

    report["tokens"] = token_stats(problems, prompt_of=user_prompt, count=len_in_student_tokens)
    report["teacher"] = teacher_budget(report["tokens"], recipe.sampling, recipe.teacher)
    for table in render(report): console.print(table)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from distill.records import Problem


def _stats(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"problems": 0}
    return {"problems": len(values), "min": min(values), "median": int(statistics.median(values)),
            "mean": round(statistics.fmean(values), 1), "max": max(values), "total": sum(values)}


def token_stats(problems: list[Problem], prompt_of: Callable[[Problem], str], count: Callable[[str], int],
                counted_with: str) -> dict[str, Any]:
    """Prompt tokens (the problem and its domain's instruction), overall and per domain."""
    lengths: dict[str, list[int]] = {}
    for p in problems:
        lengths.setdefault(p.domain, []).append(count(prompt_of(p)))
    every = [n for values in lengths.values() for n in values]
    return {"counted_with": counted_with, "all": _stats(every), "by_domain": {d: _stats(v) for d, v in lengths.items()}}


def teacher_budget(tokens: dict, sampling, teacher) -> dict[str, Any]:
    """Requests, prompt tokens and the most completion tokens the teacher may write (every sample
    at `sampling.max_tokens`), with the price the recipe states (an upper bound: traces stop early)."""
    problems, prompt_total = tokens["all"]["problems"], tokens["all"].get("total", 0)
    requests = problems * sampling.n
    prompt_tokens, most_completion = prompt_total * sampling.n, requests * sampling.max_tokens
    cost = (prompt_tokens * teacher.price_per_million_input + most_completion * teacher.price_per_million_output) / 1e6
    return {"requests": requests, "prompt_tokens": prompt_tokens, "max_completion_tokens": most_completion,
            "max_cost_usd": round(cost, 2) if cost else None}


def render(report: dict) -> list:
    from rich.table import Table

    sources = Table(title=f"{report['problems']} problems by source ({report['by_domain']})")
    for col in ("source", "layout", "read", "kept", "wanted", "answer parse rate", "skipped"):
        sources.add_column(col, justify="right" if col in ("read", "kept", "wanted", "answer parse rate") else "left")
    for s in report["sources"]:
        rate = s["answer_parse_rate"]
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(s["skipped"].items(), key=lambda kv: -kv[1])) or "-"
        sources.add_row(f"{s['name']}\n[dim]{s['dataset']}[/]", s["layout"], str(s["rows_read"]), str(s["kept"]),
                        str(s["requested"] or "all"), f"{rate:.1%}" if rate is not None else "-", skipped)
    out = [sources]
    removed = [(s["name"], reason, text) for s in report["sources"] for reason, texts in s.get("removed", {}).items()
               for text in texts]
    if removed:
        deco = Table(title="decontamination removed (examples)")
        for col in ("source", "eval set", "problem"):
            deco.add_column(col)
        for name, reason, text in removed:
            deco.add_row(name, reason.split(":", 1)[-1], text.replace("\n", " "))
        out.append(deco)
    if "tokens" in report:
        t = report["tokens"]
        tok = Table(title=f"prompt tokens ({t['counted_with']})")
        for col in ("domain", "problems", "min", "median", "mean", "max", "total"):
            tok.add_column(col, justify="left" if col == "domain" else "right")
        for domain, st in [("all", t["all"]), *sorted(t["by_domain"].items())]:
            tok.add_row(domain, *(str(st.get(k, "-")) for k in ("problems", "min", "median", "mean", "max", "total")))
        out.append(tok)
    if "teacher" in report:
        b = report["teacher"]
        cost = f", at most ${b['max_cost_usd']:,} at the recipe's prices" if b["max_cost_usd"] else ""
        out.append(f"teacher: {b['requests']:,} requests, {b['prompt_tokens']:,} prompt tokens, at most "
                   f"{b['max_completion_tokens']:,} completion tokens{cost}")
    return out
