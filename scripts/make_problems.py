"""Regenerate the bundled problem set with its fixed seed: python scripts/make_problems.py"""

from pathlib import Path

from distill.problems.bundled import generate_bundled
from distill.records import write_jsonl

OUT = Path(__file__).resolve().parent.parent / "data" / "problems" / "arithmetic.jsonl"

if __name__ == "__main__":
    problems = generate_bundled()
    write_jsonl(OUT, problems)
    n_eval = sum(p.split == "eval" for p in problems)
    print(f"wrote {len(problems)} problems ({len(problems) - n_eval} train, {n_eval} eval) to {OUT}")
