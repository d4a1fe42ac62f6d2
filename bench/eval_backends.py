"""Evaluation throughput of each backend on the embedded SmolLM2-135M (CPU): transformers in process
(batch 1, the baseline, and batched), llama.cpp in process (one request at a time), and the served
path (llama-server with parallel slots, for the GGUF and for the HF folder converted to F16). Each is
opened once, then timed over `--repeats` runs of the same greedy problems: min and median tokens/s,
ratio of the medians to the baseline, and whether every backend wrote the same completions.

    .venv/bin/python bench/eval_backends.py [--problems 8] [--max-tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distill.evaluate import harness as evaluate  # noqa: E402
from distill.evaluate.registry import open_backend  # noqa: E402
from distill.problems.bundled import generate_bundled, select  # noqa: E402
from distill.recipe import EvalCfg  # noqa: E402

MODEL = "embedded:smollm2-135m-instruct"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from distill.assets import hf_folder
    from distill.evaluate.served import served_gguf

    problems = select(generate_bundled(), "eval", args.problems)
    f16 = served_gguf(hf_folder(MODEL))  # the same weights as the HF folder, for llama.cpp
    n = args.problems
    setups = [("hf batch 1 (baseline)", MODEL, 1, False), (f"hf batch {n}", MODEL, n, False),
              ("gguf F16 in process", str(f16), 1, False), (f"served gguf F16, {n} slots", str(f16), n, True),
              (f"served hf folder, {n} slots", MODEL, n, True)]
    rows, texts = [], {}
    for label, model, batch, served in setups:
        cfg = EvalCfg(problems="-", temperature=0.0, max_tokens=args.max_tokens, batch_size=batch, served=served)
        rates = []
        with open_backend(model, cfg) as backend:
            for _ in range(args.repeats):
                out: list[dict] = []
                res = evaluate.run(backend, problems, cfg, show_progress=False, rows_out=out)
                rates.append(res["tokens_per_s"])
        texts[label] = [r["completion"] for r in out]
        rows.append((label, min(rates), statistics.median(rates), res["pass@1"], res["mean_completion_tokens"]))
    base = rows[0][2]
    print(f"\n{n} eval problems, greedy, max_tokens {args.max_tokens}, {args.repeats} timed runs each; "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine)")
    print(f"{'backend':<30}{'min tok/s':>10}{'median':>9}{'x baseline':>11}{'pass@1':>8}{'tokens':>8}")
    for label, lo, med, p1, toks in rows:
        print(f"{label:<30}{lo:>10.1f}{med:>9.1f}{med / base:>11.2f}{p1:>8.3f}{toks:>8.1f}")
    same = {label: t == texts[rows[0][0]] for label, t in texts.items()}
    print("completions identical to the baseline's: " + ", ".join(f"{k}: {v}" for k, v in same.items()))

    # What budget forcing costs on the served path (two passes: think, then answer).
    cfg = EvalCfg(problems="-", temperature=0.0, max_tokens=args.max_tokens, batch_size=n, answer_tokens=16,
                  served=True)
    with open_backend(MODEL, cfg) as backend:
        start = time.monotonic()
        curve = evaluate.budget_curve(backend, problems, cfg, [args.max_tokens // 2], show_progress=False)
        print(f"budget forcing at {args.max_tokens // 2} thinking + 16 answer tokens, served: "
              f"{time.monotonic() - start:.1f}s, mean thinking tokens {curve['points'][0]['mean_thinking_tokens']}")


if __name__ == "__main__":
    main()
