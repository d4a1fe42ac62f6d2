"""The filter and training-data preparation at 20k and 200k traces: peak memory must not grow with the
count (what grows must be on disk), with traces/s and MB/s beside it.

Synthetic R1-shaped traces (reasoning inside <think>, then a boxed answer; log-normal lengths with a
median of about 4k tokens and a tail cut at 32k; 4 samples per problem; right, wrong, truncated,
looping and language-drifting traces; a few duplicate problems) are written to a scratch folder,
then each step runs in its own process while this one samples the memory of that process tree:

  filter   distill.filter.judging.run, all cores (the factory's own path, its defaults plus
           max_per_problem=2 and the bundled eval set for decontamination)
  prepare  the train stage's own preparation of its accepted traces (distill.train.data.prepare:
           training messages, the student's chat template and tokenizer, `datasets.map` on all
           cores into an on-disk cache), as `distill train` does it before training

Per step it prints: peak RSS of the largest process (the kernel's maxrss), peak PSS of the whole
process tree (shared pages counted once, sampled every 0.25 s), wall time, traces/s, MB/s of input
and the disk it used. A step whose tree passes `--cap-gib`, or a preparation that runs past
`--cap-min`, is stopped and reported with the figures it reached.

    .venv/bin/python bench/scale.py                          # 20k and 200k: long (tens of minutes on 2 cores)
    .venv/bin/python bench/scale.py --counts 2000 20000 --steps filter
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEDIAN_TOKENS, SIGMA, MAX_TOKENS, PER_PROBLEM = 4000, 0.8, 32768, 4
NAMES = ["Mia", "Ravi", "Sofia", "Kenji", "Amara", "Lucas", "Ines", "Omar", "Lena", "Tariq", "Yuki", "Bruno"]
ITEMS = ["shells", "marbles", "stickers", "apples", "coins", "books", "pencils", "stamps", "cards", "beads"]
VERBS = ["adds", "removes", "doubles", "splits", "counts", "checks", "compares", "rewrites", "groups", "tallies"]
SENTENCES = ["Let me re-read the problem: {n} has {a} {i} and the question is about the total.",
             "So {a} plus {b} gives {c}, which I should double-check.", "Hmm, {n} {v} the {i}, so maybe {a} is wrong.",
             "Wait, if I take {b} away from {c} I get back {a}, consistent.", "Alternatively, {a} times {k} is {d}.",
             "Another way: split {c} into {a} and {b} and count each part again.",
             "Let me verify with smaller numbers first, say {k} and {e}, which give {f}.",
             "I think the key quantity is {c}, but {n} might be asking for {d} instead.",
             "Checking units: the {i} are counted one by one, so no fractions appear here.",
             "So far: {a}, then {b}, then {c}; the pattern holds for step {k}."]


def _sentence(rng: random.Random) -> str:
    a, b, k, e = rng.randint(10, 9999), rng.randint(10, 9999), rng.randint(2, 99), rng.randint(2, 99)
    return rng.choice(SENTENCES).format(n=rng.choice(NAMES), i=rng.choice(ITEMS), v=rng.choice(VERBS), a=a, b=b,
                                        c=a + b, d=a * k, k=k, e=e, f=k + e)


def corpus(rng: random.Random, chars: int = 4_000_000) -> str:
    """Varied reasoning prose (every line different), sliced per trace: building 200k traces of
    ~20k characters sentence by sentence would dominate the bench."""
    out, size = [], 0
    while size < chars:
        line = " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def make_trace(rng: random.Random, text: str, chars_per_token: float, pid: str, idx: int, problem: str,
               gold: int) -> dict:
    tokens = min(MAX_TOKENS, max(64, int(rng.lognormvariate(math.log(MEDIAN_TOKENS), SIGMA))))
    start = rng.randrange(0, len(text) - int(MAX_TOKENS * chars_per_token) - 1)
    start = text.index("\n", start) + 1
    reasoning = text[start:start + int(tokens * chars_per_token)]
    kind = rng.random()
    row = {"problem_id": pid, "sample_index": idx, "problem": problem, "answer": str(gold), "domain": "math",
           "teacher": "deepseek-ai/DeepSeek-R1", "prompt_tokens": 90, "completion_tokens": tokens,
           "provenance": {"settings": "bench", "prompt": pid}, "finish_reason": "stop"}
    if kind < 0.05:  # cut at max_tokens: no end of thinking, no answer
        return {**row, "completion": reasoning, "finish_reason": "length"}
    if kind < 0.08:
        reasoning += "\nLet me add the numbers again to be sure of the total.\n" * 12  # a loop
    elif kind < 0.10:
        reasoning += "\n所以总数是两个数的和，我们再检查一遍这个加法是否正确，结果没有问题。" * 40  # drift
    answer = gold if kind < 0.75 else gold + rng.randint(1, 9)  # a quarter are wrong
    return {**row, "completion": f"{reasoning}\n</think>\n\nSo the total is $\\boxed{{{answer}}}$."}


def write_traces(path: Path, count: int, seed: int = 0) -> int:
    """`count` traces, PER_PROBLEM per problem (2% of problems restated under another id)."""
    from distill.filter.quality import estimate_tokens

    rng = random.Random(seed)
    text = corpus(rng)
    chars_per_token = len(text[:200_000]) / estimate_tokens(text[:200_000])
    last = None
    with open(path, "w", encoding="utf-8") as f:
        for p in range(count // PER_PROBLEM):
            a, b = rng.randint(100, 99999), rng.randint(100, 99999)
            if last and rng.random() < 0.02:
                a, b = last  # the same numbers and words under a new id: a duplicate problem
            last = (a, b)
            who, item = NAMES[(a + b) % len(NAMES)], ITEMS[(a * b) % len(ITEMS)]
            problem = f"{who} has {a} {item} and finds {b} more. How many {item} does {who} have now?"
            for i in range(PER_PROBLEM):
                row = make_trace(rng, text, chars_per_token, f"s{p:07d}", i, problem, a + b)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path.stat().st_size


# --- the steps, each in its own process ---------------------------------------------------------
def step_filter(traces: Path, out: Path) -> dict:
    from distill.filter import judging
    from distill.recipe import FilterCfg

    rep = judging.run(traces, out, FilterCfg(max_per_problem=2), progress=False)
    return {"traces": rep["input"], "accepted": rep["accepted"], "by_reason": rep["by_reason"],
            "duplicate_problems": rep["problems"]["duplicates"]}


def step_prepare(accepted: Path, out: Path) -> dict:
    """The train stage's own preparation (distill.train.data.prepare): the accepted traces as
    conversations, tokenized with the student's chat template into an on-disk `datasets` cache."""
    import datasets

    from distill.recipe import load_recipe
    from distill.train import sft
    from distill.train.data import prepare

    datasets.disable_progress_bars()  # one line per step in the bench's output
    cores = str(os.cpu_count() or 1)
    recipe = load_recipe(ROOT / "recipes" / "smol.yaml", ["train.max_length=32768", f"train.dataset_num_proc={cores}"])
    data = prepare(recipe, sft.load_tokenizer(recipe), accepted, out)
    return {"traces": data.stats["examples"] + data.stats.get("eval_examples", 0), "tokens": data.stats["tokens"],
            "dropped_over_max_length": data.stats["dropped_over_max_length"]}


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def measure(step: str, src: Path, out: Path, cap_gib: float, cap_min: float) -> dict:
    """Run one step in a child process; sample the tree's PSS and the output folder's size."""
    result = out.parent / f"{out.name}.result.json"
    cmd = [sys.executable, __file__, "--child", step, str(src), str(out), str(result)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, start_new_session=True)
    peak_pss = peak_disk = 0
    killed = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        pss = sum(_pss_kib(p) for p in _tree(proc.pid))
        peak_pss = max(peak_pss, pss)
        peak_disk = max(peak_disk, _du(out))
        over = (f"above {cap_gib} GiB" if pss > cap_gib * 2**20
                else f"after {cap_min:g} min" if time.monotonic() - start > 60 * cap_min else None)
        if over and not killed:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = over
        time.sleep(0.25)
    wall = time.monotonic() - start
    info = json.loads(result.read_text()) if result.exists() and not killed else {}
    return {"step": step, "ok": os.waitstatus_to_exitcode(status) == 0 and not killed, "stopped": killed,
            "wall_s": wall, "maxrss_gib": usage.ru_maxrss / 2**20, "peak_pss_gib": peak_pss / 2**20,
            "peak_disk_gib": peak_disk / 2**30, "out_gib": _du(out) / 2**30, **info}


def child(step: str, src: str, out: str, result: str) -> None:
    info = (step_filter if step == "filter" else step_prepare)(Path(src), Path(out))
    Path(result).write_text(json.dumps(info))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--steps", nargs="+", default=["filter", "prepare"], choices=["filter", "prepare"])
    ap.add_argument("--cap-gib", type=float, default=6.0, help="stop a step whose process tree passes this")
    ap.add_argument("--cap-min", type=float, default=30.0,
                    help="stop the preparation step after this long (the filter always runs to the end)")
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temp folder, removed after)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="distill-scale-"))
    print(f"scale bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
          f"scratch {scratch}", flush=True)
    rows = []
    try:
        for count in args.counts:
            work = scratch / f"n{count}"
            work.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            size = write_traces(work / "traces.jsonl", count)
            print(f"\n{count} traces: {size / 2**30:.2f} GiB written in {time.monotonic() - t0:.0f} s", flush=True)
            src = {"filter": work / "traces.jsonl", "prepare": work / "filter" / "accepted.jsonl"}
            for step in args.steps:
                load = os.getloadavg()[0]
                r = measure(step, src[step], work / step, args.cap_gib, args.cap_min if step == "prepare" else 1e9)
                n = r.get("traces") or 0
                mb = src[step].stat().st_size / 2**20 if src[step].exists() else 0
                rows.append((count, step, r))
                status = "" if r["ok"] else f"  STOPPED {r['stopped']}" if r["stopped"] else "  FAILED"
                print(f"  {step:<8} peak RSS {r['maxrss_gib']:.2f} GiB (largest process), peak PSS "
                      f"{r['peak_pss_gib']:.2f} GiB (whole tree); {r['wall_s']:.0f} s, "
                      + (f"{n / r['wall_s']:.0f} traces/s, {mb / r['wall_s']:.1f} MB/s of input;" if r["ok"] else "")
                      + f" disk: output {r['out_gib']:.2f} GiB, peak while running "
                      f"{r['peak_disk_gib']:.2f} GiB; load average {load:.1f}{status}", flush=True)
                if step == "filter" and not r["ok"]:
                    break  # the preparation reads the filter's output
                if step == "filter":
                    print(f"           accepted {r['accepted']} of {n}; duplicate problems {r['duplicate_problems']}; "
                          f"rejections {r['by_reason']}", flush=True)
            shutil.rmtree(work / "prepare", ignore_errors=True)
    finally:
        if not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)
    for step in args.steps:
        got = [(c, r) for c, s, r in rows if s == step and r["ok"]]
        if len(got) >= 2:
            (c0, r0), (c1, r1) = got[0], got[-1]
            print(f"\n{step}: {c1 // c0}x the traces -> peak RSS x{r1['maxrss_gib'] / r0['maxrss_gib']:.2f}, "
                  f"peak PSS x{r1['peak_pss_gib'] / r0['peak_pss_gib']:.2f} (flat memory: about x1.0)")
    print(f"(load average {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores: other work on the machine "
          "slows the figures)")


if __name__ == "__main__":
    main()
