"""The GPU check's driver (run by scripts/gpu_check.sh after it installs the carried wheels).

Builds a random-initialised Qwen2.5-1.5B (the published config; no weights travel) around a tokenizer
the repo builds offline, writes R1-shaped synthetic traces (log-normal lengths, a few longer than
max_length so dropping shows), then runs the factory's own `distill train` once per case, each in its
own process under its own timeout: bf16 + SDPA (or flash-attention where installed) with packing on
and off, and DeepSpeed ZeRO-3 in one process. Per case it prints tokens/s over the steady steps, MFU
against the dense bf16 peak, and peak memory beside `distill plan`'s prediction, then one table.
`--cpu-smoke` runs the same path on a tiny config on CPU, to prove the script before a GPU call.

    bash scripts/gpu_check.sh              # on the GPU machine
    bash scripts/gpu_check.sh --cpu-smoke  # here
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".gpu-wheels"
PEAK_BF16 = 989e12  # H100/H200 SXM dense bf16 (NVIDIA datasheet)
# Qwen/Qwen2.5-1.5B's published config.json (architecture only).
QWEN25_15B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                  rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=2048, tie_word_embeddings=True)
WORDS = ("so we add the two numbers then carry one and check the sum again wait let me recompute that "
         "because seven times eight is fifty six hence x equals").split()

RECIPE = """
name: {name}
student: {{model: {student}, chat_template: chatml}}
teacher: {{backend: openai, model: stand-in, base_urls: ["http://127.0.0.1:9/v1"]}}
problems: {{path: unused.jsonl}}
train:
  mode: full
  learning_rate: 1.0e-5
  max_steps: {steps}
  per_device_train_batch_size: {batch}
  max_length: {max_length}
  packing: {packing}
  bf16: true
  gradient_checkpointing: true
  attn_implementation: {attn}
  logging_steps: 5
  save_steps: 100000
  eval_fraction: 0
  report_to: [none]
  dataset_num_proc: {procs}
{extra}
eval: {{problems: unused.jsonl}}
"""


def say(*parts) -> None:
    print(*parts, flush=True)


def environment() -> dict:
    import importlib.metadata as md
    import importlib.util

    import torch

    versions = {}
    for name in ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "deepspeed", "pyarrow", "pydantic"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    env = {"python": sys.version.split()[0], "versions": versions, "cuda": torch.cuda.is_available(),
           "flash_attn": importlib.util.find_spec("flash_attn") is not None,
           "kernels": importlib.util.find_spec("kernels") is not None}
    if env["cuda"]:
        props = torch.cuda.get_device_properties(0)
        env.update(device=props.name, gpu_mem_gib=round(props.total_memory / 1024**3, 1))
    else:
        env.update(device="cpu", gpu_mem_gib=None)
    return env


def build_student(dest: Path, smoke: bool) -> None:
    """A Qwen2 of the published 1.5B shape, random weights (bf16), with the carried ChatML tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.train.templates import apply_to

    tok = AutoTokenizer.from_pretrained(WHEELS / "tokenizer")
    apply_to(tok, "chatml", prefill_think=True)
    shape = dict(TINY, vocab_size=len(tok)) if smoke else QWEN25_15B
    config = AutoConfig.for_model("qwen2", **shape, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    del model


def write_traces(path: Path, n: int, median_words: int, max_words: int) -> None:
    from distill.records import Trace, write_jsonl

    rng = random.Random(0)
    traces = []
    for i in range(n):
        words = min(max_words, max(16, int(rng.lognormvariate(0, 0.8) * median_words)))
        words = max_words if i % 50 == 0 else words  # a few over max_length: train must drop them, not cut
        reasoning = " ".join(rng.choice(WORDS) for _ in range(words))
        traces.append(Trace(problem_id=f"g{i}", sample_index=0, problem=f"What is {i} + {3 * i}?", answer=str(4 * i),
                            teacher="stand-in", completion=f"<think>\n{reasoning}\n</think>\n\n\\boxed{{{4 * i}}}"))
    write_jsonl(path, traces)


def cases(env: dict, smoke: bool) -> list[dict]:
    attn = "flash_attention_2" if env["flash_attn"] and env["cuda"] else "sdpa"
    packed = {"name": f"packed-{attn}", "packing": True, "batch": 1, "attn": attn, "extra": ""}
    padded = {"name": f"padded-{attn}", "packing": False, "batch": 2, "attn": attn, "extra": ""}
    zero3 = {"name": f"zero3-1proc-packed-{attn}", "packing": True, "batch": 1, "attn": attn,
             "extra": "  accelerate_config: zero3\n  num_processes: 1"}
    out = [packed, padded, zero3]
    if env["cuda"] and attn == "sdpa":
        out.append({"name": "packed-flash_attention_2", "skip": "flash-attn is not installed on this machine"})
    return out


def run_case(case: dict, work: Path, student: Path, traces: Path, args, env: dict, log) -> dict:
    from distill.recipe import load_recipe
    from distill.train import plan as planner

    name = case["name"]
    if "skip" in case:
        return {"case": name, "status": "skipped", "why": case["skip"]}
    recipe_path = work / f"{name}.yaml"
    recipe_path.write_text(RECIPE.format(name=name, student=student, steps=args.steps, batch=case["batch"],
                                         max_length=args.max_length, packing=str(case["packing"]).lower(),
                                         attn=case["attn"], procs=args.procs, extra=case["extra"]))
    recipe = load_recipe(recipe_path)
    predicted = planner.estimate(recipe, gpus=1, gpu_mem_gib=env["gpu_mem_gib"] or 64)
    cmd = [sys.executable, "-m", "distill", "train", str(recipe_path), "--traces", str(traces), "--fresh"]
    start = time.monotonic()
    log.write(f"\n===== {name}: {' '.join(cmd)}\n")
    log.flush()
    try:
        proc = subprocess.run(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, timeout=case["timeout"],
                              start_new_session=True)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        status = f"timeout {case['timeout']}s"
    wall = time.monotonic() - start
    row = {"case": name, "status": status, "wall_s": round(wall, 1), "plan_total_gib": round(predicted.total_gib, 1)}
    summary_file = work / "data/runs" / name / "train_summary.json"
    if status != "ok" or not summary_file.is_file():
        return row
    summary = json.loads(summary_file.read_text())
    tp, data = summary.get("throughput") or {}, summary.get("data") or {}
    shape = planner.model_shape(str(student))
    flops = planner.flops_per_token(shape, data.get("mean_context", args.max_length / 2))
    tps = tp.get("tokens_per_s")
    row.update(steps=summary["steps"], tokens_per_s=tps, loss_first=_first(summary["losses"]),
               loss_last=_last(summary["losses"]), dropped=data.get("dropped_over_max_length"),
               kept=data.get("kept"), mean_context=data.get("mean_context"),
               attn=summary.get("attn_implementation"), master_weights=summary.get("master_weights"),
               peak_allocated_gib=tp.get("peak_allocated_gib"), peak_reserved_gib=tp.get("peak_reserved_gib"),
               peak_rss_gib=tp.get("peak_rss_gib"), tflops_per_token=round(flops / 1e12, 6))
    if tps and env["cuda"]:
        row["mfu"] = round(tps * flops / PEAK_BF16, 3)
    if row.get("peak_reserved_gib"):
        row["measured_over_plan"] = round(row["peak_reserved_gib"] / predicted.total_gib, 2)
    return row


def _first(xs):
    return round(xs[0], 3) if xs else None


def _last(xs):
    return round(xs[-1], 3) if xs else None


def table(rows: list[dict]) -> str:
    cols = [("case", 28), ("status", 12), ("steps", 5), ("tokens_per_s", 12), ("mfu", 6), ("peak_allocated_gib", 9),
            ("peak_reserved_gib", 9), ("plan_total_gib", 8), ("measured_over_plan", 8), ("loss_first", 7),
            ("loss_last", 7), ("dropped", 7), ("wall_s", 7)]
    heads = {"tokens_per_s": "tok/s", "peak_allocated_gib": "alloc GiB", "peak_reserved_gib": "resv GiB",
             "plan_total_gib": "plan GiB", "measured_over_plan": "resv/plan", "loss_first": "loss0",
             "loss_last": "lossN"}
    lines = [" ".join(heads.get(c, c)[:w].rjust(w) if i else heads.get(c, c).ljust(w) for i, (c, w) in enumerate(cols))]
    for r in rows:
        cells = []
        for i, (c, w) in enumerate(cols):
            v = r.get(c)
            v = "-" if v is None else (f"{v:.0%}" if c == "mfu" else str(v))
            cells.append(v[:w].ljust(w) if i == 0 else v[:w].rjust(w))
        lines.append(" ".join(cells))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny config on CPU: prove the script here")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET_S", 470)),
                    help="stop starting cases past this many seconds, so the table always prints")
    ap.add_argument("--out", default=os.environ.get("OUT") or "/tmp/distill-gpu-check-out")
    args = ap.parse_args()
    smoke = args.cpu_smoke
    args.steps = args.steps or (6 if smoke else 30)
    args.max_length = 512 if smoke else 8192
    args.procs = 2 if smoke else 8
    t0 = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/distill-gpu-check"))
    work.mkdir(parents=True, exist_ok=True)

    env = environment()
    say(f"gpu_check: python {env['python']}, device {env['device']} ({env['gpu_mem_gib']} GiB), "
        f"flash_attn {'yes' if env['flash_attn'] else 'NO (SDPA; packed rows use a dense mask)'}, "
        f"kernels {'yes' if env['kernels'] else 'no'}")
    say("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    if not smoke and not env["cuda"]:
        say("error: no CUDA device; use --cpu-smoke on a machine without a GPU")
        return 2

    student = work / "student"
    t = time.monotonic()
    build_student(student, smoke)
    say(f"student: random-initialised {'tiny Qwen2' if smoke else 'Qwen2.5-1.5B'} saved in {time.monotonic() - t:.1f}s")
    traces = work / "accepted.jsonl"
    # Median near a fifth of max_length; the longest traces (max_words) run past it and are dropped.
    median = args.max_length // 7
    write_traces(traces, n=40 if smoke else 220, median_words=median, max_words=args.max_length)

    rows = []
    log_path = out / "gpu_check_log.txt"
    timeouts = {"packed": 150, "padded": 150, "zero3": 200} if not smoke else {"packed": 240, "padded": 240,
                                                                               "zero3": 300}
    with open(log_path, "w") as log:
        for case in cases(env, smoke):
            case["timeout"] = next((v for k, v in timeouts.items() if case["name"].startswith(k)), 150)
            left = args.budget_s - (time.monotonic() - t0)
            if "skip" not in case and left < 60:
                rows.append({"case": case["name"], "status": "not run", "why": f"budget: {left:.0f}s left"})
                continue
            case["timeout"] = min(case["timeout"], max(60, int(left)))
            say(f"case {case['name']} (timeout {case['timeout']}s) ...")
            row = run_case(case, work, student, traces, args, env, log)
            rows.append(row)
            say("  " + json.dumps(row))
            if row["status"] not in ("ok", "skipped"):
                log.flush()
                tail = log_path.read_text().splitlines()[-25:]
                say("  last lines of its log:\n    " + "\n    ".join(line[-200:] for line in tail))
    (out / "gpu_check.json").write_text(json.dumps({"environment": env, "rows": rows, "steps": args.steps,
                                                    "max_length": args.max_length}, indent=2))
    say(f"\nsummary ({args.steps} steps at max_length {args.max_length}; tok/s over the steps after the first 2; "
        f"MFU vs {PEAK_BF16 / 1e12:.0f} TFLOP/s dense bf16; plan = `distill plan` total incl. 1 GiB overhead):")
    say(table(rows))
    say(f"total {time.monotonic() - t0:.0f}s; details in {out}/gpu_check.json and {log_path}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
