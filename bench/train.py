"""SFT throughput: padded batches vs packing (TRL bfd: padding-free rows with position ids) on ragged,
R1-shaped traces, measured in one run on this machine.

Each mode trains one epoch over the same accepted traces through `distill.train.run` (the factory's
own path) in its own subprocess, so peak memory (GPU: max allocated; CPU: peak RSS) is per mode.
The student is a small Llama built from a config with SmolLM2's real tokenizer. Trace lengths are
log-normal with a long tail like R1 traces, scaled down so the whole bench takes 1-3 minutes on CPU.

    .venv/bin/python bench/train.py            # prints tokens/s, peak memory and the packing speed-up
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
MAX_LENGTH, BATCH = 1024, 4

RECIPE = """
name: bench
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: full, learning_rate: 1.0e-4, num_train_epochs: 1, per_device_train_batch_size: {batch},
         max_length: {max_length}, packing: {packing}, logging_steps: 1000, save_steps: 100000, seed: 0}}
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


def one_mode(workdir: Path, student: Path, packing: bool) -> dict:
    """Train one epoch in this process and return tokens/s and peak memory."""
    import resource

    import torch

    from distill.recipe import load_recipe
    from distill.train import sft as train

    name = "packing" if packing else "padding"
    (workdir / f"{name}.yaml").write_text(RECIPE.format(student=student, batch=BATCH, max_length=MAX_LENGTH,
                                                        packing=str(packing).lower()))
    recipe = load_recipe(workdir / f"{name}.yaml")
    torch.set_num_threads(torch.get_num_threads())
    summary = train.run(recipe, workdir / "accepted.jsonl", workdir / name, resume=False)
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
        where = "GPU max allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        where = "CPU peak RSS"
    tokens = summary["lengths"]["tokens"]
    return {"mode": name, "tokens": tokens, "longest": summary["lengths"]["longest"], "steps": summary["steps"], "seconds": summary["train_runtime_s"],
            "tokens_per_s": tokens / summary["train_runtime_s"], "peak_mib": peak, "memory": where}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--mode":
        workdir = Path(sys.argv[2])
        print("RESULT " + json.dumps(one_mode(workdir, workdir / "student-base", sys.argv[3] == "packing")), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        build(workdir)
        results = []
        for mode in ("padding", "packing"):
            proc = subprocess.run([sys.executable, __file__, "--mode", str(workdir), mode],
                                  capture_output=True, text=True, cwd=workdir, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{mode} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            results.append(json.loads(line.removeprefix("RESULT ")))
    import platform

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"SFT throughput on {device}: {N_TRACES} ragged R1-form traces, max_length {MAX_LENGTH}, "
          f"batch {BATCH}, 4-layer Llama (h=128) with SmolLM2's tokenizer, one epoch each")
    print(f"{'mode':<10}{'tokens':>9}{'steps':>7}{'seconds':>10}{'tokens/s':>11}{'peak MiB':>11}  memory")
    for r in results:
        print(f"{r['mode']:<10}{r['tokens']:>9}{r['steps']:>7}{r['seconds']:>10.1f}{r['tokens_per_s']:>11.0f}"
              f"{r['peak_mib']:>11.0f}  {r['memory']}")
    pad, pack = results
    print(f"traces: mean {pad['tokens'] / N_TRACES:.0f} tokens, longest {pad['longest']}")
    print(f"packing speed-up: {pack['tokens_per_s'] / pad['tokens_per_s']:.2f}x tokens/s (target >= 1.5x); "
          f"peak memory {pack['peak_mib'] / pad['peak_mib']:.2f}x of padding")


if __name__ == "__main__":
    main()
