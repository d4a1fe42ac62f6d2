"""SFT throughput: padded batches vs packing (TRL bfd: padding-free rows with position ids) on ragged,
R1-shaped traces, measured in one run on this machine, each mode repeated (min and median printed).

Each run trains one epoch over the same accepted traces through `distill.train.run` (the factory's
own path) in its own subprocess, so peak memory (GPU: max allocated; CPU: peak RSS) is per run.
tokens/s is the factory's own steady-state figure (train_summary.json: non-padding tokens over the
steps after the first two). Both modes see about the same real tokens per optimizer step: padding
takes BATCH examples a step, packing one row of MAX_LENGTH tokens holding about as many. The student
is a small Llama built from a config with SmolLM2's real tokenizer; trace lengths are log-normal with
a long tail like R1 traces, scaled down so the whole bench takes a few minutes on CPU.

    .venv/bin/python bench/train.py [--repeats 3]   # prints tokens/s, peak memory, packing/padding ratios
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_TRACES = 48
MEDIAN_WORDS, SIGMA, MAX_WORDS = 90, 0.9, 700  # log-normal like R1 trace lengths, scaled down
MAX_LENGTH, BATCH, PACKED_ROWS = 1024, 4, 1

RECIPE = """
name: bench
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: full, learning_rate: 1.0e-4, num_train_epochs: 1, per_device_train_batch_size: {batch},
         max_length: {max_length}, packing: {packing}, logging_steps: 1000, save_steps: 100000, seed: 0,
         eval_fraction: 0, report_to: [none]}}
eval: {{problems: p.jsonl}}
"""


def build(workdir: Path) -> Path:
    """A small Llama with SmolLM2's tokenizer, and ragged R1-form traces."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.assets import hf_folder
    from distill.records import Trace, write_jsonl
    from distill.train.templates import apply_to

    tok = AutoTokenizer.from_pretrained(hf_folder("embedded:smollm2-135m-instruct"))
    apply_to(tok, "chatml", prefill_think=True)
    torch.manual_seed(0)
    cfg = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=128, intermediate_size=384,
                               num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=2048, tie_word_embeddings=True,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    student = workdir / "student-base"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(student)
    tok.save_pretrained(student)
    rng = random.Random(0)
    words = ["so", "we", "add", "the", "two", "numbers", "then", "carry", "one", "and", "check", "sum", "again",
             "wait", "let", "me", "recompute"]
    traces = []
    for i in range(N_TRACES):
        n = min(MAX_WORDS, max(8, int(rng.lognormvariate(0, SIGMA) * MEDIAN_WORDS)))
        reasoning = " ".join(rng.choice(words) for _ in range(n))
        traces.append(Trace(problem_id=f"b{i}", sample_index=0, problem=f"What is {i} + {i * 3}?", answer=str(4 * i),
                            teacher="bench", completion=f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{4 * i}}}."))
    write_jsonl(workdir / "accepted.jsonl", traces)
    return student


def one_mode(workdir: Path, student: Path, packing: bool, run: int) -> dict:
    """Train one epoch in this process; the factory's summary gives tokens/s and peak memory."""
    from distill.recipe import load_recipe
    from distill.train import sft as train

    name = "packing" if packing else "padding"
    (workdir / f"{name}.yaml").write_text(RECIPE.format(student=student, batch=PACKED_ROWS if packing else BATCH,
                                                        max_length=MAX_LENGTH, packing=str(packing).lower()))
    recipe = load_recipe(workdir / f"{name}.yaml")
    summary = train.run(recipe, workdir / "accepted.jsonl", workdir / f"{name}-{run}", resume=False)
    tp = summary["throughput"]
    peak = tp.get("peak_allocated_gib", tp.get("peak_rss_gib")) * 1024
    return {"mode": name, "tokens": summary["data"]["tokens"], "longest": summary["data"]["longest"],
            "steps": summary["steps"], "tokens_per_step": summary["data"]["tokens"] / summary["steps"],
            "tokens_per_s": tp["tokens_per_s"], "peak_mib": peak,
            "memory": "GPU max allocated" if "peak_allocated_gib" in tp else "CPU peak RSS"}


def main() -> None:
    import argparse
    import os
    import platform
    import statistics

    if len(sys.argv) == 5 and sys.argv[1] == "--mode":
        workdir = Path(sys.argv[2])
        result = one_mode(workdir, workdir / "student-base", sys.argv[3] == "packing", int(sys.argv[4]))
        print("RESULT " + json.dumps(result), flush=True)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    repeats = ap.parse_args().repeats
    runs: dict[str, list[dict]] = {"padding": [], "packing": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        build(workdir)
        for run in range(repeats):  # interleaved, so drift in machine load hits both modes alike
            for mode in runs:
                proc = subprocess.run([sys.executable, __file__, "--mode", str(workdir), mode, str(run)],
                                      capture_output=True, text=True, cwd=workdir, check=False)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    sys.exit(f"{mode} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
                runs[mode].append(json.loads(line.removeprefix("RESULT ")))
    import torch

    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
              else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    print(f"SFT throughput on {device}, load average {os.getloadavg()[0]:.2f} (1 min): {N_TRACES} ragged R1-form "
          f"traces, max_length {MAX_LENGTH}, padding batch {BATCH} vs packing {PACKED_ROWS} row(s), 4-layer Llama "
          f"(h=128) with SmolLM2's tokenizer, one epoch a run, {repeats} runs a mode")
    print(f"{'mode':<9}{'steps':>6}{'tok/step':>9}{'tok/s min':>11}{'tok/s med':>11}{'peak MiB min':>14}"
          f"{'peak MiB med':>14}  memory")
    med = {}
    for mode, rs in runs.items():
        tps = [r["tokens_per_s"] for r in rs]
        peaks = [r["peak_mib"] for r in rs]
        med[mode] = (statistics.median(tps), statistics.median(peaks))
        r = rs[0]
        print(f"{mode:<9}{r['steps']:>6}{r['tokens_per_step']:>9.0f}{min(tps):>11.0f}{med[mode][0]:>11.0f}"
              f"{min(peaks):>14.0f}{med[mode][1]:>14.0f}  {r['memory']}")
    print(f"traces: mean {runs['padding'][0]['tokens'] / N_TRACES:.0f} tokens, longest {runs['padding'][0]['longest']}")
    print(f"packing / padding (medians): {med['packing'][0] / med['padding'][0]:.2f}x tokens/s, "
          f"{med['packing'][1] / med['padding'][1]:.2f}x peak memory")


if __name__ == "__main__":
    main()
