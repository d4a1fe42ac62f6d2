"""What a run folder holds, read once: the stage ledger, the filter report, the training summary,
the eval results and budget curve, and the export manifest. The report and `distill compare` read
runs through this, so both show the same figures.

    d = RunData(Path("data/runs/smol"))
    rows = accuracy_rows(d)   # base, student, benchmarks, each exported quant
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from distill.errors import DistillError
from distill.records import read_json


def _json(path: Path):
    try:
        return read_json(path) if path.exists() else None
    except json.JSONDecodeError:
        return None  # a figure is left out rather than the whole report failing on one bad file


class RunData:
    def __init__(self, run_dir: Path, export_dir: Path | None = None):
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise DistillError(f"{self.dir} is not a run folder; runs live in data/runs/<recipe>/")
        recipe_path = self.dir / "recipe.yaml"
        self.recipe = (yaml.safe_load(recipe_path.read_text()) or {}) if recipe_path.exists() else {}
        self.name = self.recipe.get("name") or self.dir.name
        export_name = (self.recipe.get("export") or {}).get("name") or self.name
        self.export_dir = Path(export_dir) if export_dir else Path("export") / export_name
        self.stages: dict = _json(self.dir / "stages.json") or {}
        self.filter_report: dict | None = _json(self.dir / "filter" / "report.json")
        self.train_summary: dict | None = _json(self.dir / "train_summary.json")
        if self.train_summary is not None:
            self.train_summary.setdefault("logging_steps", (self.recipe.get("train") or {}).get("logging_steps"))
        self.results: dict = _json(self.dir / "eval" / "results.json") or {}
        self.budgets: dict | None = _json(self.dir / "eval" / "budgets.json")
        self.manifest: dict | None = _json(self.export_dir / "manifest.json")
        self.rounds: list[dict] = _json(self.dir / "rounds.json") or []  # STaR rounds, one row per student
        sample = _json(self.dir / "sample_summary.json") or {}
        if "cost_usd" in sample and isinstance(self.stages.get("sample"), dict):
            self.stages["sample"].setdefault("cost_usd", sample["cost_usd"])

    @property
    def problems_count(self) -> int | None:
        n = (self.stages.get("problems") or {}).get("problems")
        if n is None and (self.dir / "problems.jsonl").exists():
            with open(self.dir / "problems.jsonl", encoding="utf-8") as f:
                n = sum(1 for line in f if line.strip())
        return n

    def trace_lengths(self) -> tuple[list[int], list[int]]:
        """Completion tokens of accepted and rejected traces (a whitespace estimate where uncounted)."""
        out = []
        for name in ("accepted.jsonl", "rejected.jsonl"):
            path, lengths = self.dir / "filter" / name, []
            if path.exists():
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            rec = json.loads(line)
                        except json.JSONDecodeError:
                            continue
                        n = rec.get("completion_tokens") or len(str(rec.get("completion", rec.get("raw", ""))).split())
                        lengths.append(int(n))
            out.append(lengths)
        return out[0], out[1]


def accuracy_rows(d: RunData) -> list[dict]:
    """One row per evaluated model: base, the student of each STaR round but the last, and the student
    (eval split, then each benchmark), then each exported quant whose manifest entry carries a measured
    pass@1; `pass@1_se` is its standard error; a quant's `vs_f16` (± `vs_f16_se`) is its pass@1 minus F16's,
    paired on the same problems."""
    rows = []
    for label, res in d.results.items():
        if isinstance(res, dict) and "pass@1" in res:
            stage = label.split("@", 1)[0]
            if label == "student":
                rows += round_rows(d)
            rows.append({"stage": stage, "label": f"student (round {len(d.rounds)})" if label == "student"
                         and d.rounds else label, **{k: v for k, v in res.items() if k != "model"}})
    for entry in (d.manifest or {}).get("files", []):
        if entry.get("pass@1") is not None:
            rows.append({"stage": "quant", "label": entry.get("quant") or entry.get("file"),
                         "pass@1": entry["pass@1"], "pass@1_se": entry.get("pass@1_se"),
                         "vs_f16": entry.get("pass@1_vs_f16"), "vs_f16_se": entry.get("pass@1_vs_f16_se"),
                         "problems": entry.get("eval_problems", ""),
                         "truncation_rate": entry.get("truncation_rate"),
                         "mean_thinking_tokens": entry.get("mean_thinking_tokens"),
                         "closed_think_rate": entry.get("closed_think_rate"),
                         "mean_completion_tokens": entry.get("mean_completion_tokens", "")})
    return rows


def round_rows(d: RunData) -> list[dict]:
    """The students of STaR rounds before the last, on the eval split (the last is the eval stage's)."""
    return [{"stage": "round", "label": f"student (round {row['round']})", **row["eval"]}
            for row in d.rounds if isinstance(row.get("eval"), dict) and "pass@1" in row["eval"]]
