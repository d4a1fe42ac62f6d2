"""Stage 1, teacher sampling: problems in, traces out.

Takes a recipe and its problems; asks the teacher (`teacher/`: an OpenAI-compatible endpoint, llama.cpp,
a local HF model or a published trace set) for `sampling.n` R1-form completions per problem and appends
them to `traces.jsonl`, resumable and incremental (each trace carries its provenance; only what is
missing under the same settings is asked for), with a `sample_summary.json` (tokens, cost, failures,
per-URL figures) and `sample_failures.jsonl` (failures for good, not asked again).

    summary = distill.sample.run(recipe, problems, Path("data/runs/smol/traces.jsonl"))
"""

from distill.sample.sampler import run

__all__ = ["run"]
