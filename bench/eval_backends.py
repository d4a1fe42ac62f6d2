"""Evaluation throughput of each backend on the embedded SmolLM2-135M (CPU), and what budget
forcing costs: prints tokens/s and ratios against the HF batch-1 baseline measured in this run.

    .venv/bin/python bench/eval_backends.py [--problems 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import time

from distill.evaluate import harness as evaluate
from distill.evaluate.backends import open_backend
from distill.problems.bundled import generate_bundled
from distill.recipe import EvalCfg

MODEL = "embedded:smollm2-135m-instruct"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    from distill.assets import embedded_gguf

    problems = generate_bundled(per_kind=4)[: args.problems]
    rows = []
    for label, model, batch in [("hf batch 1", MODEL, 1), (f"hf batch {args.problems}", MODEL, args.problems),
                                ("gguf Q4_1 in process", str(embedded_gguf(MODEL)), 1)]:
        cfg = EvalCfg(problems="-", temperature=0.0, max_tokens=args.max_tokens, batch_size=batch, answer_tokens=16)
        with open_backend(model, cfg) as backend:
            res = evaluate.run(backend, problems, cfg, show_progress=False)
            start = time.monotonic()
            curve = evaluate.budget_curve(backend, problems, cfg, [args.max_tokens // 2], show_progress=False)
            forced_s = time.monotonic() - start
        rows.append((label, res["tokens_per_s"], res["wall_s"], forced_s, curve["points"][0]["mean_thinking_tokens"]))
    base = rows[0][1]
    print(f"{len(problems)} problems, greedy, max_tokens {args.max_tokens}; budget forcing at {args.max_tokens // 2}"
          " thinking + 16 answer tokens")
    print(f"{'backend':<24}{'tok/s':>8}{'x hf b1':>9}{'eval s':>8}{'forced s':>10}{'think tok':>10}")
    for label, tps, wall, forced, think in rows:
        print(f"{label:<24}{tps:>8.1f}{tps / base:>9.2f}{wall:>8.1f}{forced:>10.1f}{think:>10.1f}")


if __name__ == "__main__":
    main()
