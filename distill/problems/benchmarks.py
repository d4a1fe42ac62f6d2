"""Public reasoning benchmarks by name, loaded through `datasets` and mapped to Problem records.

A name loads the hub dataset; `name@DIR` loads a local copy kept in the hub repo's layout (the
same `load_dataset` call, so an offline machine reads exactly what the hub would give).

    problems = load_benchmark("math500", limit=50)
    problems = load_benchmark("gsm8k@/data/gsm8k")
    problems = load_eval_problems(recipe.eval.problems, recipe.eval.split)  # a benchmark or a JSONL split
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from distill.errors import DistillError
from distill.problems.bundled import load_split
from distill.records import Problem


def _math500(row: dict, i: int) -> Problem:
    return Problem(id=row.get("unique_id") or f"math500-{i}", problem=row["problem"], answer=str(row["answer"]),
                   source="MATH-500", split="eval")


def _aime(year: int) -> Callable[[dict, int], Problem]:
    def to_problem(row: dict, i: int) -> Problem:
        # Some mirrors capitalise the columns (Problem/Answer/ID); accept both.
        def get(k: str):
            return row.get(k, row.get(k.capitalize(), row.get(k.upper())))

        return Problem(id=f"aime{year % 100}-{get('id') if get('id') is not None else i}", problem=get("problem"),
                       answer=str(get("answer")).strip(), source=f"AIME {year}", split="eval")
    return to_problem


def _gpqa(row: dict, i: int) -> Problem:
    options = [row["Correct Answer"]] + [row[f"Incorrect Answer {k}"] for k in (1, 2, 3)]
    options = [str(o).strip() for o in options]
    rid = row.get("Record ID") or f"gpqa-{i}"
    # The correct option comes first in the file: shuffle it, seeded by the record, so runs agree.
    order = list(range(4))
    random.Random(rid).shuffle(order)
    choices = [options[j] for j in order]
    letter = "ABCD"[order.index(0)]
    text = row["Question"].strip() + "\n\n" + "\n".join(f"{'ABCD'[k]}) {c}" for k, c in enumerate(choices))
    return Problem(id=str(rid), problem=text, answer=letter, domain="choice", choices=choices,
                   source="GPQA-Diamond", split="eval")


def _gsm8k(row: dict, i: int) -> Problem:
    final = row["answer"].rsplit("####", 1)[-1]
    return Problem(id=f"gsm8k-{i}", problem=row["question"], answer=re.sub(r"[,\s$]", "", final),
                   source="GSM8K", split="eval")


@dataclass(frozen=True)
class Benchmark:
    hub: str  # dataset repo on the hub
    config: str | None
    split: str
    to_problem: Callable[[dict, int], Problem]


BENCHMARKS: dict[str, Benchmark] = {
    "math500": Benchmark("HuggingFaceH4/MATH-500", None, "test", _math500),
    "aime24": Benchmark("HuggingFaceH4/aime_2024", None, "train", _aime(2024)),
    "aime25": Benchmark("yentinglin/aime_2025", None, "train", _aime(2025)),
    "gpqa_diamond": Benchmark("Idavidrein/gpqa", "gpqa_diamond", "train", _gpqa),
    "gsm8k": Benchmark("openai/gsm8k", "main", "test", _gsm8k),
}


def load_benchmark(spec: str, limit: int | None = None) -> list[Problem]:
    """Problems of benchmark `spec` (`name` or `name@DIR`), the first `limit` of them."""
    name, _, local = spec.partition("@")
    if name not in BENCHMARKS:
        raise DistillError(f"unknown benchmark {name!r}; choose from {', '.join(sorted(BENCHMARKS))}")
    bench = BENCHMARKS[name]
    import datasets

    source = local or bench.hub
    try:
        # A local copy is re-read every time: datasets' cache can mistake two folders of the same name
        # (measured: a second `gsm8k/` folder got the first one's rows).
        mode = "force_redownload" if local else None
        rows = datasets.load_dataset(source, bench.config, split=bench.split, download_mode=mode)
    except Exception as e:  # noqa: BLE001 - datasets raises many types for offline, gated or missing repos
        raise DistillError(
            f"cannot load {name} from {source} ({type(e).__name__}: {str(e)[:200]}); where the hub is "
            f"unreachable or the dataset is gated, download {bench.hub} elsewhere and use `{name}@DIR`") from None
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    try:
        return [bench.to_problem(row, i) for i, row in enumerate(rows)]
    except (KeyError, TypeError) as e:
        raise DistillError(f"{source} does not look like {bench.hub} (missing column {e}); "
                           f"keep the hub repo's layout") from None


def is_benchmark(spec: str) -> bool:
    return spec.split("@", 1)[0] in BENCHMARKS


def load_eval_problems(spec: str, split: str = "eval", limit: int | None = None) -> list[Problem]:
    """A recipe's eval problems: a benchmark by name (`math500`, `aime24@DIR`) or a JSONL's split."""
    return load_benchmark(spec, limit) if is_benchmark(spec) else load_split(spec, split, limit)
