"""Two runs side by side in one table, from what each run folder saved (no model is rerun):
two recipes, or one recipe before and after a change.

    distill compare data/runs/smol data/runs/smol-lora      # or just: distill compare smol smol-lora
    headers, rows = compare(Path("data/runs/smol"), Path("data/runs/smol-lora"))
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.runs import RunData, accuracy_rows


def resolve_run(spec: str | Path) -> Path:
    """A run folder, a recipe name (data/runs/<name>) or a recipe file (its `name`)."""
    path = Path(spec)
    if path.is_dir():
        return path
    if path.suffix in (".yaml", ".yml") and path.exists():
        from distill.recipe import load_recipe

        return load_recipe(path).run_dir
    if (Path("data/runs") / str(spec)).is_dir():
        return Path("data/runs") / str(spec)
    raise DistillError(f"no run found for {spec!r}: give a run folder (data/runs/<recipe>), a recipe name "
                       "or a recipe file whose run has started")


def metrics(d: RunData) -> dict[str, float | int | str | None]:
    """The figures of one run worth comparing, keyed by a readable name (insertion order = table order)."""
    m: dict = {}
    for r in accuracy_rows(d):
        for key in sorted(k for k in r if k.startswith("pass@")):
            m[f"{key} {r['label']}"] = r[key]
        if r.get("mean_completion_tokens") not in (None, ""):
            m[f"mean tokens {r['label']}"] = r["mean_completion_tokens"]
    for p in (d.budgets or {}).get("points", []):
        m[f"pass@1 at budget {p['budget']}"] = p["pass@1"]
        m[f"thinking tokens at budget {p['budget']}"] = p.get("mean_thinking_tokens")
    rep = d.filter_report or {}
    if rep:
        m |= {"traces": rep.get("input"), "accepted": rep.get("accepted"), "acceptance rate": rep.get("acceptance_rate")}
    losses = (d.train_summary or {}).get("losses") or []
    if losses:
        m |= {"train steps": d.train_summary.get("steps"), "first loss": losses[0], "last loss": losses[-1]}
    for stage, entry in d.stages.items():
        if isinstance(entry, dict) and "seconds" in entry:
            m[f"seconds {stage}"] = entry["seconds"]
        if isinstance(entry, dict) and entry.get("cost_usd") is not None:
            m[f"cost USD {stage}"] = entry["cost_usd"]
    return m


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def compare(run_a: str | Path, run_b: str | Path) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): metric, A, B, B - A; a metric only one run has shows "–" for the other."""
    a, b = RunData(resolve_run(run_a)), RunData(resolve_run(run_b))
    ma, mb = metrics(a), metrics(b)
    if not ma and not mb:
        raise DistillError(f"neither {a.dir} nor {b.dir} has saved results yet; run `distill run RECIPE` first")
    rows = []
    for key in list(ma) + [k for k in mb if k not in ma]:
        va, vb = ma.get(key), mb.get(key)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
        delta = f"{vb - va:+.4g}" if numeric else ""
        rows.append([key, _fmt(va), _fmt(vb), delta])
    name_a = a.name if a.name != b.name else str(a.dir)
    name_b = b.name if a.name != b.name else str(b.dir)
    return ["metric", name_a, name_b, "B - A"], rows
