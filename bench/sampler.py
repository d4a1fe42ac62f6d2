"""Sampler throughput, printed in one run (about 2 minutes on 2 cores):

1. against a real llama.cpp server on loopback (the embedded SmolLM2): completion tokens/s of a plain
   sequential client, of a plain parallel client (the server's own parallel throughput) and of our
   sampler, and the ratios;
2. client capacity against a loopback server that answers instantly, with 1,000 requests in flight:
   requests/s and client CPU-milliseconds per request for our sampler (aiohttp), streamed (the
   default: 32 server-sent chunks per answer) and whole, and for reference the bare httpx and
   aiohttp clients (why the sampler uses aiohttp).

    .venv/bin/python bench/sampler.py [--requests 10000] [--llama-prompts 2] [--rounds 4] [--max-tokens 32]
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
# max_tokens, so all clients do identical work and only the client differs.
NO_EOS = {"logit_bias": {"0": -100, "2": -100}}


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


def bench_llama(prompts: int, max_tokens: int, rounds: int) -> None:
    """The three clients take turns (`rounds` times) so that load from other work on the machine
    falls on all of them alike; each figure is total tokens over total time. The server runs one
    thread: llama.cpp's thread barriers stall badly on oversubscribed cores (we measured single
    requests taking 1 s or 26 s depending on what else ran), one thread keeps the figures comparable."""
    import httpx

    from distill.assets import embedded_gguf
    from distill.sample import sampler as sample
    from distill.sample.prompts import teacher_messages
    from distill.sample.teacher.llamacpp import LlamaCppServer

    totals = {k: [0, 0.0] for k in ("sequential", "parallel", "sampler")}
    with tempfile.TemporaryDirectory() as tmp, LlamaCppServer(embedded_gguf("embedded:smollm2-135m-instruct"),
                                                              "embedded:smollm2-135m-instruct", n_ctx=1024,
                                                              n_threads=1, log_path=Path(tmp) / "server.log") as server:
        url = server.url + "/chat/completions"

        def body(p, i):
            return {"model": "m", "messages": teacher_messages(p.problem, None, 1), "max_tokens": max_tokens,
                    "temperature": 0.7, "top_p": 0.95, "seed": i, **NO_EOS}

        async def parallel(probs) -> int:
            import aiohttp

            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as s:
                async def one(i, p):
                    async with s.post(url, json=body(p, i)) as r:
                        return (await r.json())["usage"]["completion_tokens"]
                return sum(await asyncio.gather(*(one(i, p) for i, p in enumerate(probs))))

        with httpx.Client(timeout=300) as c:
            c.post(url, json=body(_problems(1)[0], 0)).raise_for_status()  # warm-up: model paged in
            for r in range(rounds):
                probs = _problems(prompts, offset=r * prompts)
                t0 = time.perf_counter()
                tokens = sum(c.post(url, json=body(p, i)).json()["usage"]["completion_tokens"]
                             for i, p in enumerate(probs))
                totals["sequential"][0] += tokens
                totals["sequential"][1] += time.perf_counter() - t0
                t0 = time.perf_counter()
                totals["parallel"][0] += asyncio.run(parallel(probs))
                totals["parallel"][1] += time.perf_counter() - t0
                t0 = time.perf_counter()
                summary = sample.run(_recipe(server.url, 4, max_tokens, few_shot=1, extra=NO_EOS), probs,
                                     Path(tmp) / f"traces{r}.jsonl", show_progress=False)
                totals["sampler"][1] += time.perf_counter() - t0  # the sampler's whole run, setup included
                totals["sampler"][0] += summary["completion_tokens"]
    rate = {k: tok / sec for k, (tok, sec) in totals.items()}
    n = rounds * prompts
    print(f"llama.cpp server on loopback (SmolLM2-135M Q4_1), {n} requests x {max_tokens} tokens per client, "
          f"clients interleaved over {rounds} rounds:")
    print(f"  plain sequential client   {rate['sequential']:7.1f} completion tokens/s  ({totals['sequential'][0]} tokens)")
    print(f"  plain parallel client (4) {rate['parallel']:7.1f} completion tokens/s  ({totals['parallel'][0]} tokens;"
          " the server's own parallel throughput)")
    print(f"  distill sampler (4)       {rate['sampler']:7.1f} completion tokens/s  ({totals['sampler'][0]} tokens)")
    print(f"  ratio sampler/sequential {rate['sampler'] / rate['sequential']:.2f}, "
          f"sampler/server-parallel {rate['sampler'] / rate['parallel']:.2f} (target >= 0.90)")


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
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--llama-prompts", type=int, default=2, help="per client and round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="client capacity runs per mode")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve_instant(args.serve)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    bench_llama(args.llama_prompts, args.max_tokens, args.rounds)
    bench_capacity(args.requests, args.repeats)
    print(f"\n(bench wall time {time.perf_counter() - start:.0f}s; 1-minute load average {load0:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores: other work on the machine shows here)")


if __name__ == "__main__":
    main()
