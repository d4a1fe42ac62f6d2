"""Export ladder on SmolLM2-135M-Instruct, proven as `distill export` proves it: per quant, size,
bits/weight, KL divergence and top-1 agreement against F16 (llama-perplexity on the model's own
greedy completions of eval-split problems), F16's noise floor, Q4_K_M with and without an importance
matrix, pass@1 ± standard error through llama-server, and tokens/s; then decode and prompt tokens/s
per quant (min and median of 3 runs) against F16 in the same run.

    .venv/bin/python bench/export.py [--problems 40] [--eval-limit 40] [--calibration 64] [--quants Q8_0 Q4_K_M Q4_0]

--problems eval-split problems whose greedy completions are the held-out text; --eval-limit how many
of them get pass@1 per file (0: KL divergence only, as GPU recipes may choose).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distill.assets import hf_folder  # noqa: E402
from distill.export import gguf as export  # noqa: E402
from distill.problems.bundled import load_split  # noqa: E402
from distill.recipe import EvalCfg, ExportCfg  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = ROOT / "data/problems/arithmetic.jsonl"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def gen_speed(path: Path, threads: int, n: int = 64, repeats: int = 3) -> list[float]:
    """Greedy decode tokens/s (after a warm-up), one value per run."""
    from distill.llamacpp import load_gguf

    llm = load_gguf(path, n_ctx=512, n_threads=threads)
    ids = llm.tokenize(b"<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n", add_bos=False,
                       special=True)
    llm.create_completion(ids, max_tokens=4, temperature=0.0)
    rates = []
    for _ in range(repeats):
        llm.reset()
        t = time.monotonic()
        res = llm.create_completion(ids, max_tokens=n, temperature=0.0)
        rates.append(res["usage"]["completion_tokens"] / (time.monotonic() - t))
    llm.close()
    return rates


def prompt_speed(path: Path, threads: int, n: int = 256, repeats: int = 3) -> list[float]:
    from distill.llamacpp import load_gguf

    llm = load_gguf(path, n_ctx=512, n_threads=threads, n_batch=n)
    ids = llm.tokenize(("The quick brown fox jumps over the lazy dog. " * 40).encode())[:n]
    llm.eval(ids[:8])
    rates = []
    for _ in range(repeats):
        llm.reset()
        t = time.monotonic()
        llm.eval(ids)
        rates.append(len(ids) / (time.monotonic() - t))
    llm.close()
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=40)
    ap.add_argument("--eval-limit", type=int, default=None, help="pass@1 problems per file (default: --problems)")
    ap.add_argument("--calibration", type=int, default=64, help="train-split problems for the importance matrix")
    ap.add_argument("--quants", nargs="+", default=["Q8_0", "Q4_K_M", "Q4_0"])
    ap.add_argument("--kld-ctx", type=int, default=256)
    ap.add_argument("--kld-chunks", type=int, default=16)
    args = ap.parse_args()
    eval_limit = args.problems if args.eval_limit is None else args.eval_limit
    start = time.monotonic()
    model_dir = Path(hf_folder("embedded:smollm2-135m-instruct"))
    heldout = load_split(PROBLEMS, "eval", args.problems)
    calibration = load_split(PROBLEMS, "train", args.calibration)
    eval_cfg = EvalCfg(problems=str(PROBLEMS), max_tokens=128, temperature=0.0, batch_size=8)
    cfg = ExportCfg(quants=args.quants, kld_ctx=args.kld_ctx, kld_chunks=args.kld_chunks, imatrix_chunks=16)
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "smol"
        manifest = export.run(model_dir, out, "smol", cfg, base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                              recipe_name="bench", recipe_sha256="0" * 64, heldout_problems=heldout,
                              calibration_problems=calibration, eval_problems=heldout[:eval_limit] or None,
                              eval_cfg=eval_cfg)
        export_s = time.monotonic() - start
        files = {e["quant"]: e for e in manifest["files"]}
        kld, im = manifest["kld"], manifest["imatrix"]
        print(f"\nSmolLM2-135M-Instruct export ({os.cpu_count()} cores, load average {load_before} before, "
              f"{load()} after; shared machine)")
        print(f"KL divergence on {kld['scored_tokens']} tokens ({kld['chunks']} chunks of {kld['ctx']}) of "
              f"{kld['conversations']} conversations: {kld['source']}; importance matrix: {im['chunks']} chunks "
              f"of {im['ctx']} from {im['source']}; pass@1 on {eval_limit} eval problems, greedy, 128 tokens")
        print(f"{'quant':8} {'MiB':>7} {'bpw':>5} {'imatrix':>7} {'KLD':>17} {'same top-1':>11} {'ppl':>7} "
              f"{'pass@1':>13} {'trunc':>6} {'fallback':>9}")
        for q, e in files.items():
            p1 = (f"{e['pass@1']:6.3f} ± {e['pass@1_se']:.3f} {e['truncation_rate']:6.2f}" if "pass@1" in e
                  else f"{'-':>13} {'-':>6}")
            print(f"{q:8} {e['bytes'] / 2**20:7.1f} {e['bits_per_weight']:5.2f} {str(e['imatrix']):>7} "
                  f"{e['kld']:8.5f} ± {e['kld_se']:.5f} {e['top1_agreement']:10.2%} {e['perplexity']:7.3f} "
                  f"{p1} {len(e['fallback_tensors']):4d}/{e['tensors']:<4d}")
        c = im["comparison"]
        print(f"Q4_K_M KL divergence: {c['with']:.5f} with the importance matrix, {c['without']:.5f} without "
              f"({100 * (c['with'] / c['without'] - 1):+.1f}%)")
        order = [files[q]["kld"] for q in ("Q8_0", "Q4_K_M", "Q4_0") if q in files]
        print(f"Q8_0 < Q4_K_M < Q4_0 in KL divergence: {order == sorted(order) and len(order) == 3}")
        lp = files["F16"]["logit_parity"]
        print(f"F16 vs HF fp32 on {lp['texts']} conversations ({lp['positions']} positions): top-1 "
              f"{lp['top1_agreement']:.2%}, mean KLD {lp['kld']:.2e}, max |Δlogit| {lp['max_abs_diff']}; "
              f"export wall time {export_s:.0f}s")

        threads = os.cpu_count() or 1
        print(f"\ndecode and prompt tokens/s ({threads} threads; min / median of 3; load average {load()})")
        print(f"{'quant':8} {'decode':>15} {'vs F16':>7} {'prompt b=256':>15}")
        base = None
        for q, e in files.items():
            d, p = gen_speed(out / e["file"], threads), prompt_speed(out / e["file"], threads)
            base = base or statistics.median(d)
            print(f"{q:8} {min(d):6.1f} / {statistics.median(d):6.1f} {statistics.median(d) / base:6.2f}x "
                  f"{min(p):6.1f} / {statistics.median(p):6.1f}")
    print(f"\nbench wall time {time.monotonic() - start:.0f}s, load average {load()}")


if __name__ == "__main__":
    main()
