"""Sampler throughput, printed in one run (about 5 minutes on 2 cores):

1. the embedded teacher as `make student` runs it (recipes/smol.yaml's prompts through the sampler), on
   yesterday's server (`llama_cpp.server`, one request at a time) and on llama.cpp's own llama-server
   with 1 slot and with one slot per request in flight (continuous batching, shared prefix computed
   once), the baseline serving the same file as the teacher (recipes/smol.yaml's teacher.requantize and
   K-cache type), and once more with the file as shipped and llama-server's default K cache, to show what
   those two settings gain: completion tokens/s, min and median over interleaved repeats, and the ratio
   to the baseline;
2. client capacity against a loopback server that answers instantly, with 1,000 requests in flight:
   requests/s and client CPU-milliseconds per request for our sampler (aiohttp), streamed (the
   default: 32 server-sent chunks per answer) and whole, and for reference the bare httpx and
   aiohttp clients (why the sampler uses aiohttp).

    .venv/bin/python bench/sampler.py [--problems 8] [--max-tokens 64] [--repeats 3] [--slots N] [--only embedded]
        [--other-build ~/.cache/distill/wheels/llama-cpp-python-avx2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

BODY = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant",
                                                         "content": "<think>\nok\n</think>\n\n\\boxed{1}"},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
STREAM_CHUNKS = 32
EVENTS = b"".join(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f" tok{i}"},
                                                        "finish_reason": "stop" if i == STREAM_CHUNKS - 1 else None}]}
                                          ).encode() + b"\n\n" for i in range(STREAM_CHUNKS))
EVENTS += b'data: {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 32}}\n\ndata: [DONE]\n\n'
STREAM_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: "
                   + str(len(EVENTS)).encode() + b"\r\n\r\n" + EVENTS)


class _Instant(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 responder: the cheapest possible server, so the client is measured."""

    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(STREAM_RESPONSE if b'"stream": true' in body else RESPONSE)


def serve_instant(port: int) -> None:
    async def main():
        server = await asyncio.get_running_loop().create_server(_Instant, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# SmolLM2's end tokens (<|endoftext|>, <|im_end|>) forbidden: every request generates exactly
# max_tokens, so every server does identical work and only the server differs.
NO_EOS = {"logit_bias": {"0": -100, "2": -100}}
GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 8, "bf16": 30}  # ggml.h, for llama_cpp.server's --type_k


def _recipe(url: str, concurrent: int, max_tokens: int, few_shot: int = 0, extra: dict | None = None,
            stream: bool = True):
    from distill.recipe import Recipe

    return Recipe.model_validate({
        "name": "bench", "student": {"model": "x"}, "problems": {"path": "p.jsonl"}, "eval": {"problems": "p.jsonl"},
        "teacher": {"backend": "openai", "model": "embedded:smollm2-135m-instruct", "base_urls": [url],
                    "few_shot": few_shot},
        "sampling": {"n": 1, "max_tokens": max_tokens, "temperature": 0.7, "max_concurrent": concurrent,
                     "timeout_s": 300, "max_retries": 2, "extra_body": extra or {}, "stream": stream}})


def _problems(k: int, offset: int = 0):
    from distill.records import Problem

    return [Problem(id=f"b{i}", problem=f"Tom has {i + 11} apples and buys {i + 23} more. How many now?",
                    answer=str(2 * i + 34)) for i in range(offset, offset + k)]


class PythonLlamaServer:
    """Yesterday's embedded teacher server, the baseline: `python -m llama_cpp.server` (llama-cpp-python's
    OpenAI-compatible server, one request at a time, no prompt reuse between requests)."""

    def __init__(self, gguf: Path, alias: str, n_ctx: int, n_threads: int, log_path: Path, type_k: int | None):
        self.cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
                    "--host", "127.0.0.1", "--port", str(free_port()), "--n_ctx", str(n_ctx),
                    "--n_threads", str(n_threads), *(["--type_k", str(type_k)] if type_k is not None else []),
                    "--interrupt_requests", "False"]  # streamed requests queue instead of cutting off the one streaming
        self.url = f"http://127.0.0.1:{self.cmd[self.cmd.index('--port') + 1]}/v1"
        self.log_path = log_path

    def __enter__(self):
        import httpx

        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _ in range(1500):
            try:
                if httpx.get(self.url + "/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)  # as distill.llamacpp.LlamaServer polls
        raise RuntimeError(f"llama_cpp.server did not start; see {self.log_path}")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def bench_embedded(problems: int, max_tokens: int, repeats: int, slots: int, threads: int | None,
                   other_build: Path | None = None) -> None:
    """The embedded teacher as `make student` runs it (recipes/smol.yaml: system line, its worked examples,
    n samples per problem, the sampler) on three servers, interleaved `repeats` times so load from other
    work on the machine falls on all alike: `llama_cpp.server` (yesterday's path, one request at a time),
    llama-server with 1 slot (prompt cache only) and with `slots` slots (continuous batching, the shared
    prefix computed once). Every run starts its server inside the timing, as the sample stage does (the
    baseline too: until this session it was started once, outside the timing, and kept its prefix warm).
    `other_build`: another llama.cpp build cached by `make setup` (a folder holding bin/), whose llama-server
    serves the teacher as the `slots` row does, in one more row (e.g. the avx2 build beside the avx512 one)."""
    from distill.problems.bundled import load_split
    from distill.recipe import load_recipe
    from distill.sample import sampler as sample

    root = Path(__file__).resolve().parents[1]
    smol = load_recipe(root / "recipes/smol.yaml")
    probs = load_split(root / smol.problems.path, "train", problems * repeats)
    threads = threads or os.cpu_count() or 1
    over = {"sampling": {**smol.sampling.model_dump(), "max_tokens": max_tokens, "extra_body": NO_EOS,
                         "timeout_s": 600}}

    def recipe(teacher: dict, concurrent: int):
        from distill.recipe import Recipe

        data = smol.model_dump(mode="json") | over
        data["teacher"] = {**data["teacher"], "n_threads": threads, **teacher}
        data["sampling"] = {**data["sampling"], "max_concurrent": concurrent}
        return Recipe.model_validate(data)

    shipped = f"llama-server, {slots} slots, the file as shipped, f16 K cache"
    rates: dict[str, list[float]] = {"llama_cpp.server": [], "llama-server, 1 slot": [],
                                     f"llama-server, {slots} slots": [], shipped: []}
    other = f"llama-server, {slots} slots, the {other_build.name} build" if other_build else None
    if other:
        rates[other] = []
    reuse = {}
    gguf = Path(smol.teacher.model) if not smol.teacher.model.startswith("embedded:") else None
    with tempfile.TemporaryDirectory() as tmp:
        from distill.assets import embedded_gguf
        from distill.llamacpp import requantized

        # The baseline serves the very file and K-cache type the teacher's llama-server does.
        gguf = gguf or embedded_gguf(smol.teacher.model)
        gguf = requantized(gguf, smol.teacher.requantize) if smol.teacher.requantize else gguf
        args = smol.teacher.server_args
        ctk = args[args.index("-ctk") + 1] if "-ctk" in args[:-1] else None
        def baseline():  # a fresh server per run, started inside the timing as the teacher's llama-server is
            return PythonLlamaServer(gguf, smol.teacher.model, smol.teacher.n_ctx, threads,
                                     Path(tmp) / "python-server.log", GGML_TYPES[ctk] if ctk else None)

        def on(server):
            return recipe({"backend": "openai", "base_urls": [server.url], "requantize": None, "server_args": []}, 1)

        runs = {"llama_cpp.server": None,
                "llama-server, 1 slot": recipe({}, 1),
                f"llama-server, {slots} slots": recipe({}, slots),
                # what teacher.requantize and teacher.server_args gain, in the same run
                shipped: recipe({"requantize": None, "server_args": []}, slots)}
        if other:
            runs[other] = recipe({}, slots)
        with baseline() as warm:  # the file in the page cache and Python's imports compiled, for every row
            sample.run(on(warm), probs[:1], Path(tmp) / "warm" / "t.jsonl", show_progress=False)
        for r in range(repeats):
            batch = probs[r * problems:(r + 1) * problems]
            for name, rec in runs.items():
                out = Path(tmp) / f"{r}-{len(rates[name])}-{name.replace(' ', '_').replace(',', '')}" / "t.jsonl"
                with _build(other_build if name == other else None):
                    t0 = time.perf_counter()
                    if rec is None:
                        with baseline() as server:
                            summary = sample.run(on(server), batch, out, show_progress=False)
                    else:
                        summary = sample.run(rec, batch, out, show_progress=False)
                    rates[name].append(summary["completion_tokens"] / (time.perf_counter() - t0))
                metrics = out.parent / "teacher-server.json"
                if metrics.exists():
                    reuse[name] = json.loads(metrics.read_text())
    n = problems * smol.sampling.n
    print(f"embedded teacher ({smol.teacher.model} as {smol.teacher.requantize or 'shipped'}, server args "
          f"{smol.teacher.server_args}, {smol.teacher.few_shot} worked examples + system line), "
          f"{n} requests ({problems} problems x n={smol.sampling.n}) x {max_tokens} tokens per run, "
          f"{threads} threads, {repeats} repeats interleaved, llama.cpp build {_installed_build()} (completion "
          "tokens/s; every run starts its own server, inside the timing):")
    base = rates["llama_cpp.server"]
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base)]
        m = reuse.get(name)
        cache = (f"; prompt tokens computed {m['prompt_tokens_total']:.0f}, reused {m['prompt_tokens_cached_total']:.0f}"
                 if m else "")
        print(f"  {name:<56} min {min(values):6.1f}  median {statistics.median(values):6.1f}   "
              f"x baseline: min {min(ratios):.2f} median {statistics.median(ratios):.2f}{cache}")


@contextmanager
def _build(folder: Path | None):
    """llama.cpp's tools taken from `folder`/bin (and its libraries) while inside, where given."""
    if folder is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in ("DISTILL_LLAMA_BIN", "LD_LIBRARY_PATH")}
    os.environ["DISTILL_LLAMA_BIN"] = os.environ["LD_LIBRARY_PATH"] = str(folder / "bin")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _installed_build() -> str:
    """The folder of the build `make setup` installed (named in its llama-server wrapper)."""
    import re

    from distill.llamacpp import tool

    found = re.search(r"llama-cpp-python-[\w-]+", tool("llama-server").read_text(errors="replace")[:2000])
    return found.group(0) if found else "on PATH"


async def _bare_client(kind: str, url: str, n: int, inflight: int) -> tuple[float, float]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    jobs = iter(range(n))
    if kind == "httpx":
        import httpx

        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=inflight,
                                                       max_keepalive_connections=inflight), timeout=120)

        async def one():
            (await client.post(url, json=body)).json()
    else:
        import aiohttp

        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=inflight))

        async def one():
            async with client.post(url, json=body) as r:
                await r.json()

    async def worker():
        for _ in jobs:
            await one()

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await (client.aclose() if kind == "httpx" else client.close())
    return n / wall, 1000 * cpu / n


def bench_capacity(requests: int, repeats: int = 3, inflight: int = 1000) -> None:
    from distill.sample import sampler as sample

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline().strip() == b"ready"
        base = f"http://127.0.0.1:{port}/v1"
        probs = _problems(requests)
        print(f"\nclient capacity, loopback server answering instantly, {inflight} requests in flight, "
              f"{os.cpu_count()} cores (server on the same cores):")
        runs = {True: [], False: []}
        for _ in range(repeats):  # alternated, so load from other work falls on both alike
            for stream in (True, False):
                with tempfile.TemporaryDirectory() as tmp:
                    c0 = time.process_time()
                    summary = sample.run(_recipe(base, inflight, 5, stream=stream), probs,
                                         Path(tmp) / "traces.jsonl", show_progress=False)
                    cpu = time.process_time() - c0
                    assert summary["sampled"] == requests, summary["failed"][:3]
                    assert (Path(tmp) / "traces.jsonl").read_bytes().count(b"\n") == requests
                runs[stream].append((requests / summary["wall_s"], 1000 * cpu / requests))
        for stream, got in runs.items():
            rps, ms = sorted(r for r, _ in got), sorted(c for _, c in got)
            how = f"streamed, {STREAM_CHUNKS} chunks" if stream else "whole answers"
            print(f"  distill sampler (aiohttp, {how:<20}) requests/s min {rps[0]:5.0f} median {statistics.median(rps):5.0f}"
                  f"; ms client CPU/request min {ms[0]:4.2f} median {statistics.median(ms):4.2f}  "
                  f"({repeats} x {requests} samples; target >= 500 requests/s)")
        for kind, n in (("aiohttp", requests), ("httpx", max(500, requests // 20))):
            r, c = asyncio.run(_bare_client(kind, base + "/chat/completions", n, inflight))
            print(f"  bare {kind:<8} client        {r:7.0f} requests/s  {c:5.2f} ms client CPU/request  ({n} requests)")
    finally:
        server.kill()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10000, help="client capacity: samples against the instant server")
    ap.add_argument("--problems", type=int, default=8, help="embedded teacher: problems per run (x the recipe's n)")
    ap.add_argument("--max-tokens", type=int, default=64, help="embedded teacher: new tokens per request")
    ap.add_argument("--repeats", type=int, default=3, help="embedded teacher runs per server, client capacity runs per mode")
    ap.add_argument("--slots", type=int, default=None, help="default: recipes/smol.yaml's sampling.max_concurrent")
    ap.add_argument("--threads", type=int, default=None, help="server threads (default: all cores)")
    ap.add_argument("--only", choices=["embedded", "capacity"])
    ap.add_argument("--other-build", type=Path, help="embedded teacher: one more row on another llama.cpp build "
                    "`make setup` cached, e.g. ~/.cache/distill/wheels/llama-cpp-python-avx2")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve_instant(args.serve)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    if args.only != "capacity":
        from distill.recipe import load_recipe

        slots = args.slots or load_recipe(Path(__file__).resolve().parents[1] / "recipes/smol.yaml").sampling.max_concurrent
        bench_embedded(args.problems, args.max_tokens, args.repeats, slots, args.threads, args.other_build)
    if args.only != "embedded":
        bench_capacity(args.requests, args.repeats)
    print(f"\n(bench wall time {time.perf_counter() - start:.0f}s; 1-minute load average {load0:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores: other work on the machine shows here)")


if __name__ == "__main__":
    main()
