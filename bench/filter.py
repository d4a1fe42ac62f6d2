"""Filter throughput: traces/s for realistic R1-style traces, one process vs all cores, same run.

    .venv/bin/python bench/filter.py              # 10,000 traces (about 2-3 minutes on 2 cores)
    .venv/bin/python bench/filter.py --n 2000     # quicker
    .venv/bin/python bench/filter.py --code 24    # code judging only: the jail vs the old sandbox

The traces imitate what a teacher returns: reasoning that opens mid-thought (the template put
`<think>` in the prompt), right and wrong boxed answers, fractions vs decimals, unboxed answers,
truncations, loops, language drift, multiple-choice and a few code answers run in the sandbox.
Prints traces/s for each worker count, the speed-up, the acceptance mix (which must be the same),
and the longest time any single trace took against its configured deadline.

`--code N` judges N Python code traces (10 stdin/stdout tests each, 70% correct) three times with
the old sandbox (distill/filter/sandbox.py as of commit 62cd7a9: one process per test, rlimits and
an audit hook, read from git), the bubblewrap jail (one jail per trace, a fresh child per test) and
unsafe-local (the same runner without the jail), then C++ traces in the jail with and without the
precompiled <bits/stdc++.h>; it prints traces/s (min and median of the repeats), whether the
verdicts are right, g++'s CPU seconds per compile, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distill.filter import judging as trace_filter
from distill.recipe import FilterCfg

NAMES = ["Mia", "Ravi", "Sofia", "Kenji", "Amara", "Lucas", "Ines", "Omar"]
ITEMS = ["shells", "marbles", "stickers", "apples", "coins", "books"]
FILLER = ["Let me re-read the problem to make sure I have the numbers right.",
          "Hmm, I should double-check this step before moving on.",
          "So the key quantity here is the total after the change.",
          "Alternatively, I could count up from the smaller number.",
          "Wait, is the question asking for the total or the difference? It asks for the total.",
          "That seems reasonable; let me verify it once more in another way."]


def math_trace(rng: random.Random, pid: str, idx: int) -> dict:
    a, b = rng.randint(10, 999), rng.randint(10, 999)
    who, item = rng.choice(NAMES), rng.choice(ITEMS)
    problem = f"{who} has {a} {item} and finds {b} more, then shares them equally with a friend. " \
              f"How many {item} does each get? (Problem {pid})"
    gold = f"\\frac{{{a + b}}}{{2}}" if (a + b) % 2 else str((a + b) // 2)
    steps = [f"Okay, so {who} starts with {a} {item} and finds {b} more.",
             f"Adding them gives {a} + {b} = {a + b}."] + rng.sample(FILLER, 3) + \
            [f"Sharing equally between two people means dividing by 2: {a + b} / 2 = {(a + b) / 2}."]
    reasoning = "\n".join(steps)
    kind = rng.random()
    answer = gold if rng.random() < 0.5 else str((a + b) / 2)  # \frac vs decimal
    if kind < 0.55:
        tail = f"Each gets $\\boxed{{{answer}}}$ {item}."
    elif kind < 0.7:
        tail = f"Each gets $\\boxed{{{(a + b) / 2 + 1}}}$ {item}."  # wrong
    elif kind < 0.78:
        tail = f"The answer is {answer}."  # unboxed: the phrase fallback
    elif kind < 0.84:
        return {**_base(pid, idx, problem, gold), "completion": reasoning + "\nSo the total", "finish_reason": "length"}
    elif kind < 0.88:
        reasoning += "\n" + "Let me add the numbers again to be sure of the total.\n" * 12
        tail = f"$\\boxed{{{answer}}}$"
    elif kind < 0.91:
        reasoning += "\n所以每个人得到的数量是总数的一半，我们再检查一遍这个除法是否正确，结果没有问题。" * 2
        tail = f"$\\boxed{{{answer}}}$"
    else:
        tail = f"Each gets $\\boxed{{{answer}}}$."
    return {**_base(pid, idx, problem, gold), "completion": f"{reasoning}\n</think>\n\n{tail}", "finish_reason": "stop"}


def choice_trace(rng: random.Random, pid: str, idx: int) -> dict:
    options = ["Mercury", "Venus", "Earth", "Mars"]
    pick = rng.choice("ABCD") if rng.random() < 0.3 else "B"
    body = "Venus has a thick CO2 atmosphere that traps heat, so it is hotter than Mercury.\n"
    return {**_base(pid, idx, f"Which planet is the hottest? ({pid})", "B"), "domain": "choice", "choices": options,
            "completion": f"{body}</think>\n\nThe answer is ({pick}).", "finish_reason": "stop"}


def code_trace(rng: random.Random, pid: str, idx: int) -> dict:
    op = "+" if rng.random() < 0.7 else "-"
    code = f"a, b = map(int, input().split())\nprint(a {op} b)"
    return {**_base(pid, idx, f"Read two integers and print their sum. ({pid})", ""), "domain": "code",
            "tests": [{"input": "2 3\n", "output": "5\n"}],
            "completion": f"Read both, add.\n</think>\n\n```python\n{code}\n```", "finish_reason": "stop"}


def _base(pid: str, idx: int, problem: str, gold: str) -> dict:
    return {"problem_id": pid, "sample_index": idx, "problem": problem, "answer": gold, "domain": "math",
            "teacher": "deepseek-r1"}


def make_traces(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for k in range(n // 4):
        pid = f"bench-{k:05d}"
        r = rng.random()
        make = code_trace if r < 0.01 else choice_trace if r < 0.08 else math_trace
        rows += [make(rng, pid, i) for i in range(4)]
    return rows


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


OLD_SANDBOX_COMMIT = "62cd7a9"


def _old_sandbox():
    """The sandbox this jail replaced, loaded from git as a module (the baseline)."""
    import subprocess
    import types

    src = subprocess.run(["git", "show", f"{OLD_SANDBOX_COMMIT}:distill/filter/sandbox.py"], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    mod = types.ModuleType("old_sandbox")
    sys.modules["old_sandbox"] = mod  # dataclasses look their module up there
    exec(compile(src, "old_sandbox.py", "exec"), mod.__dict__)
    return mod


def _without_pch(judge):
    from distill.filter import jail

    real, jail.pch_dir = jail.pch_dir, lambda: None
    try:
        return judge()
    finally:
        jail.pch_dir = real


def _compile_cpu(code: str, repeats: int) -> list[float]:
    from distill.filter.sandbox import CodeLimits, judge_code

    return [judge_code(code, "cpp", [{"input": "1 2", "output": "3"}], CodeLimits()).runs[0]["cpu_s"]
            for _ in range(repeats)]


def code_bench(n: int, repeats: int = 3) -> None:
    import statistics

    from distill.filter.sandbox import CodeLimits, judge_code

    rng = random.Random(0)
    traces = []
    for _ in range(n):
        pairs = [(rng.randint(-999, 999), rng.randint(-999, 999)) for _ in range(10)]
        tests = [{"input": f"{a} {b}\n", "output": f"{a + b}\n"} for a, b in pairs]
        traces.append((rng.random() < 0.7, tests))
    py = {True: "a, b = map(int, input().split())\nprint(a + b)", False: "a, b = map(int, input().split())\nprint(a - b)"}
    cpp = {ok: "#include <bits/stdc++.h>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<(a" + ("+" if ok else "-")
           + "b)<<std::endl;}" for ok in (True, False)}
    old = _old_sandbox()
    judges = {
        "old sandbox (process per test)": lambda ok, t: old.passes_tests(py[ok], t, old.SandboxLimits()),
        "bwrap jail (jail per trace)": lambda ok, t: judge_code(py[ok], "python", t, CodeLimits()).passed,
        "unsafe-local (runner, no jail)": lambda ok, t: judge_code(py[ok], "python", t,
                                                                   CodeLimits(sandbox="unsafe-local")).passed,
        "bwrap jail, C++ (g++ -O2 once per trace)": lambda ok, t: judge_code(cpp[ok], "cpp", t, CodeLimits()).passed,
        "  the same without the precompiled header": lambda ok, t: _without_pch(
            lambda: judge_code(cpp[ok], "cpp", t, CodeLimits()).passed),
    }
    print(f"code judging bench: {n} traces x 10 tests, 70% correct, one process, {repeats} repeats; "
          f"load average {os.getloadavg()[0]:.1f} before (other work on the machine skews every figure)")
    for name, judge in judges.items():
        rates, agree = [], True
        for _ in range(repeats):
            start = time.perf_counter()
            verdicts = [judge(ok, tests) for ok, tests in traces]
            rates.append(n / (time.perf_counter() - start))
            agree = agree and verdicts == [ok for ok, _ in traces]
        print(f"  {name:42s} min {min(rates):6.2f}  median {statistics.median(rates):6.2f} traces/s  "
              f"verdicts right: {agree}")
    with_pch, without = _compile_cpu(cpp[True], repeats), _without_pch(lambda: _compile_cpu(cpp[True], repeats))
    print(f"  g++ CPU s per compile of a <bits/stdc++.h> program: with the precompiled header min {min(with_pch):.2f} "
          f"median {statistics.median(with_pch):.2f}; without min {min(without):.2f} median {statistics.median(without):.2f}")
    print(f"  load average {os.getloadavg()[0]:.1f} after")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--code", type=int, default=0, help="only the code-judging bench, on this many traces")
    args = ap.parse_args()
    if args.code:
        code_bench(args.code)
        return
    cfg = FilterCfg(max_per_problem=2)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "traces.jsonl"
        src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in make_traces(args.n)), encoding="utf-8")
        # Warm up first (imports of math-verify, matplotlib, datasketch): the forked workers inherit
        # them, so without this the one-process run alone would pay for them.
        warm = Path(tmp) / "warm.jsonl"
        warm.write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
        trace_filter.run(warm, Path(tmp) / "warm", cfg, workers=1, progress=False)
        results = {}
        load_before = os.getloadavg()[0]
        for workers in (1, cores):
            start, cpu, kids = time.perf_counter(), time.process_time(), _children_cpu()
            rep = trace_filter.run(src, Path(tmp) / f"out{workers}", cfg, workers=workers, progress=False)
            results[workers] = (time.perf_counter() - start, rep, time.process_time() - cpu, _children_cpu() - kids)
        same = all((Path(tmp) / "out1" / f).read_bytes() == (Path(tmp) / f"out{cores}" / f).read_bytes()
                   for f in ("accepted.jsonl", "rejected.jsonl"))
    n = results[1][1]["input"]
    print(f"filter bench: {n} traces, {cores} cores, python {sys.version.split()[0]}; load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work on the machine skews the ratio)")
    for workers, (secs, rep, cpu, kids) in results.items():
        print(f"  {workers} process(es): {secs:6.1f} s  {n / secs:7.1f} traces/s  "
              f"(accepted {rep['accepted']}, slowest trace {rep['run']['slowest_trace_s']:.3f} s; "
              f"CPU s: parent {cpu:.1f}, workers and sandboxes {kids:.1f})")
    if cores > 1:
        print(f"  speed-up {cores} vs 1 process: {results[1][0] / results[cores][0]:.2f}x (target >= 1.7x on 2 cores)")
        serial_cpu = results[1][2] + results[1][3]
        _, _, p_cpu, p_kids = results[cores]
        # On an idle machine the parallel run would take its total CPU spread over the cores.
        print(f"  CPU-bound ceiling on an idle {cores}-core machine: {serial_cpu * cores / (p_cpu + p_kids):.2f}x "
              f"({serial_cpu:.1f} CPU s in one process vs {p_cpu + p_kids:.1f} CPU s in all, parallel)")
    rep = results[cores][1]
    print(f"  longest wait of any trace: {rep['run']['slowest_trace_s']:.3f} s; deadline {rep['run']['math_deadline_s']} s "
          f"per math trace (verify_timeout_s={cfg.verify_timeout_s}); timed out: {rep['by_reason'].get('verify_timeout', 0)}")
    print(f"  outputs identical across worker counts: {same}")
    print(f"  rejections: {rep['by_reason']}")


if __name__ == "__main__":
    main()
