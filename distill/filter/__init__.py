"""Stage 2, rejection filter: traces in, accepted and rejected traces out, each with its verdict.

Judges every trace (form of the think block, the final answer by math-verify, code by its tests in
the sandbox, choice letters, language mixing, repetition, length), then per problem (duplicates,
benchmark contamination, pass-rate band, k shortest). Writes `accepted.jsonl`, `rejected.jsonl`,
`report.json`/`report.md` and plots.

    report = distill.filter.run(Path("traces.jsonl"), Path("out"), recipe.filter)
"""

from distill.filter.judging import run

__all__ = ["run"]
