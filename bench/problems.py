"""The problems step's throughput: how long building a mixture takes before any teacher call.

    .venv/bin/python bench/problems.py              # 4,000 rows, 3 repeats (a few minutes on 2 cores)
    .venv/bin/python bench/problems.py --n 1000     # quicker

A local folder in AI-MO/NuminaMath-1.5's layout (LaTeX answers: integers, fractions, radicals,
intervals, tuples; some proofs and invalid rows) is read through `datasets` and mapped three ways in
the same run: the layout alone (baseline), plus the gold-answer check (math-verify, what
`unparseable_gold` would cost later), plus decontamination against four eval sets of 500 problems
each (the size of MATH-500; the real four are MATH-500, AIME24, AIME25, GPQA-Diamond). Prints rows/s
for each (min and median of the repeats) and the load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distill.filter.screen import problem_checks  # noqa: E402
from distill.problems.mixture import Checks, build  # noqa: E402
from distill.recipe import Recipe  # noqa: E402

ANSWERS = ["{a}", "\\frac{{{a}}}{{{b}}}", "{a}\\sqrt{{{b}}}", "[{a}, {b})", "({a}, {b})", "-\\frac{{{a}}}{{{b}}}",
           "{a}\\pi", "x={a}", "{a}.{b}"]
TOPICS = ["triangle", "sequence", "polynomial", "prime", "circle", "integer", "probability", "function"]


def rows(n: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        a, b = rng.randint(2, 999), rng.randint(2, 99)
        topic = rng.choice(TOPICS)
        problem = (f"Problem {i}: a {topic} has parameters ${a}$ and ${b}$. Find the value asked for, given that "
                   f"the {topic} satisfies the stated condition for every ${rng.randint(1, 9)}$.")
        kind = rng.random()
        answer = "proof" if kind < 0.1 else rng.choice(ANSWERS).format(a=a, b=b)
        out.append({"problem": problem, "solution": "...", "answer": answer, "problem_type": "Algebra",
                    "question_type": "proof" if kind < 0.1 else "math-word-problem", "problem_is_valid": "Yes",
                    "solution_is_valid": "No" if 0.1 <= kind < 0.15 else "Yes", "source": "olympiads",
                    "synthetic": False})
    return out


def eval_set(path: Path, n: int, rng: random.Random) -> str:
    lines = [json.dumps({"id": f"e{i}", "problem": f"Evaluate {rng.randint(1, 99)} times the {rng.choice(TOPICS)} "
                         f"number {i} plus {rng.randint(1, 99)} over the given range.", "answer": "1", "split": "eval"})
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        import pyarrow as pa
        import pyarrow.parquet as pq

        root = Path(tmp) / "NuminaMath-1.5"
        (root / "data").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows(args.n, rng)), root / "data" / "train-00000-of-00001.parquet")
        evals = [eval_set(Path(tmp) / f"eval{k}.jsonl", 500, rng) for k in range(4)]
        recipe = Recipe.model_validate({
            "name": "bench", "student": {"model": "m"}, "teacher": {"backend": "hf", "model": "m"},
            "eval": {"problems": evals[0]},
            "problems": {"sources": [{"dataset": str(root), "layout": "numina"}], "decontaminate": evals}})
        full = problem_checks(recipe)  # eval n-grams are indexed once, outside the timing
        variants = {"layout only": Checks(), "+ gold check": Checks(gold=full.gold), "+ decontamination": full}
        build(recipe.problems)  # warm the datasets cache: every variant then reads the same arrow files
        print(f"{args.n} rows (NuminaMath-1.5 layout), {args.repeats} repeats, load average "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for name, checks in variants.items():
            times, kept = [], 0
            for _ in range(args.repeats):
                start = time.perf_counter()
                problems, _ = build(recipe.problems, checks)
                times.append(time.perf_counter() - start)
                kept = len(problems)
            print(f"{name:>18}: {args.n / statistics.median(times):8.0f} rows/s median, "
                  f"{args.n / min(times):8.0f} best ({kept} kept)")
        print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
