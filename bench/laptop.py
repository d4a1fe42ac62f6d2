"""The laptop side on the embedded SmolLM2-135M GGUF (49k vocab): what `distill chat` pays before
and while it talks. (1) Reading a GGUF's context metadata: distill's header walk against gguf-py's
GGUFReader (the baseline). (2) A streamed reply (thinking split from the answer, tags held back)
against llama.cpp's own `create_completion` for the same greedy tokens, with 1 thread and with all
cores. Each figure: min and median of 3 runs, with the load average (the machine may be shared).

    .venv/bin/python bench/laptop.py [--tokens 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distill.assets import embedded_gguf  # noqa: E402

REPEATS = 3


def timed(fn) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256, help="greedy tokens per reply")
    args = ap.parse_args()
    from gguf import GGUFReader

    from distill.export.context import metadata, read_context
    from distill.laptop.chat import reply
    from distill.llamacpp import load_gguf, render_prompt
    from distill.r1 import student_messages

    path = embedded_gguf("embedded:smollm2-135m-instruct")
    print(f"{path.name}: {read_context(path)}; load average {os.getloadavg()[0]:.2f}", flush=True)
    base = timed(lambda: GGUFReader(str(path)))
    ours = timed(lambda: metadata(path))
    print(f"GGUF metadata  GGUFReader (baseline)  min {base[0]:.3f} s  median {base[1]:.3f} s", flush=True)
    print(f"               header walk            min {ours[0]:.3f} s  median {ours[1]:.3f} s  "
          f"({base[1] / ours[1]:.0f}x faster)")

    messages = student_messages("Ava has 23 coins and gets 14 more. How many coins does Ava have now?")
    for threads in sorted({1, os.cpu_count() or 1}):
        llm = load_gguf(path, n_ctx=2048, n_threads=threads)
        prompt = render_prompt(llm, messages)
        llm.create_completion(prompt, max_tokens=8, temperature=0.0)  # warm-up: page the weights in

        def plain(llm=llm, prompt=prompt):
            llm.reset()
            res = llm.create_completion(prompt, max_tokens=args.tokens, temperature=0.0)
            return res["usage"]["completion_tokens"]

        def streamed(llm=llm, prompt=prompt):
            llm.reset()
            r = reply(llm, prompt_text=prompt, max_tokens=args.tokens, temperature=0.0)
            return r.thinking_tokens + r.answer_tokens

        a, b = timed(plain), timed(streamed)
        print(f"{threads} thread(s), load {os.getloadavg()[0]:.2f}:", flush=True)
        print(f"  create_completion (baseline)  {a[2] / a[1]:6.1f} tokens/s median ({a[2] / a[0]:.1f} best)"
              f" over {a[2]} tokens")
        print(f"  distill reply (streamed)      {b[2] / b[1]:6.1f} tokens/s median ({b[2] / b[0]:.1f} best)"
              f" over {b[2]} tokens")
        llm.close()


if __name__ == "__main__":
    main()
