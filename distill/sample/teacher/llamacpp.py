"""A local GGUF through llama.cpp: llama.cpp's own `llama-server` started on 127.0.0.1 for the run
(requests go through the same HTTP client as a remote R1), or in process (`teacher.in_process: true`:
no server, no port; one generation at a time in a worker thread).

The server gets one slot per request the sampler keeps in flight (`sampling.max_concurrent`), so no
request waits for a slot, and the slots decode together (continuous batching). Every request of a
run shares the system line and the few-shot examples (~950 tokens for the embedded recipe, against
~55 new tokens per sample): the first prompt is computed once, in slot 0, saved with llama-server's
slot API and restored into every other slot; from then on each request reuses the shared prefix in
whatever slot it lands and computes only its own problem's tokens. The sampler's job order (all `n`
samples of a problem, then the next problem) needs nothing else.

    teacher:
      backend: llamacpp
      model: embedded:smollm2-135m-instruct   # or a .gguf path
      in_process: false                       # true: llama-cpp-python in this process, one at a time
      requantize: Q8_0                        # serve the file converted to this type (cached)
      server_args: [-ctk, q8_0]               # more llama-server arguments
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from distill.assets import embedded_gguf, is_embedded
from distill.errors import DistillError
from distill.llamacpp import LlamaServer, requantized
from distill.records import write_json
from distill.sample.teacher.base import Generation, Teacher, TeacherError
from distill.sample.teacher.openai import Endpoint, OpenAITeacher, parse_chat_response


def _gguf(model: str) -> Path:
    gguf = embedded_gguf(model) if is_embedded(model) else Path(model)
    if not gguf.exists():
        raise DistillError(f"teacher GGUF {gguf} not found; set `teacher.model` to a .gguf file")
    return gguf


def server_metrics(text: str) -> dict[str, float]:
    """llama-server's Prometheus counters (`llamacpp:NAME VALUE` lines) as {NAME: VALUE}."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^llamacpp:(\w+) ([-+.\deE]+)$", text, re.M)}


class LlamaCppTeacher(OpenAITeacher):
    """llama-server on loopback with one slot per request in flight; the server starts in `open`,
    when the sampler says how many requests it keeps in flight, and stops in `close`/`__exit__`."""

    keep_alive = False  # a loopback connection per request: llama-server breaks kept-alive ones after a stream

    def __init__(self, model: str, n_ctx: int = 2048, n_threads: int | None = None,
                 log_path: Path | None = None, requantize: str | None = None, server_args: list[str] | None = None):
        self.gguf = _gguf(model)
        self.requantize, self.server_args = requantize, list(server_args or [])
        self.n_ctx, self.n_threads, self.log_path = n_ctx, n_threads, log_path
        self.server: LlamaServer | None = None
        self.metrics: dict[str, float] = {}  # the server's own counters at close (prompt tokens reused, ...)
        self._warm: asyncio.Lock | None = None
        self._warmed = False
        self.slots_filled = 0  # slots that got the shared prefix without computing it
        self._slot_dir = None
        super().__init__(model, ["http://127.0.0.1:0/v1"])  # the real URL is known once the server runs

    async def open(self, max_concurrent: int, timeout_s: float) -> None:
        import tempfile

        # --reasoning-format none: the completion comes back as the model wrote it (R1 form is ours to
        # parse); --metrics: prompt tokens computed vs reused; --slot-save-path: for `_fill_slots`;
        # --cache-ram 0: no host-memory prompt cache (it keeps a copy of every finished prompt, up to 8 GiB
        # by default, and each slot already reuses the shared prefix it holds).
        self._slot_dir = tempfile.TemporaryDirectory(prefix="distill-slots-")
        gguf = await asyncio.to_thread(requantized, self.gguf, self.requantize) if self.requantize else self.gguf
        self.server = LlamaServer(gguf, alias=self.model, parallel=max_concurrent, ctx=self.n_ctx,
                                  threads=self.n_threads, log_path=self.log_path,
                                  extra_args=["--reasoning-format", "none", "--metrics", "--cache-ram", "0",
                                              "--slot-save-path", self._slot_dir.name, *self.server_args])
        try:
            await asyncio.to_thread(self.server.__enter__)
        except BaseException:
            self.__exit__()  # the slot folder goes too
            raise
        self.base_urls, self.endpoints = [self.server.url], [Endpoint(self.server.url)]
        self._warm, self._warmed = asyncio.Lock(), False
        await super().open(max_concurrent, timeout_s)

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        if not self._warmed:
            async with self._warm:
                if not self._warmed:
                    self.slots_filled = await self._fill_slots(messages)
                    self._warmed = True
        return await super().generate(messages, params)

    async def _fill_slots(self, messages: list[dict]) -> int:
        """Compute the first prompt once in slot 0 and copy its KV cache into every other slot (llama-server
        keeps no prefix shared between slots by itself: each would compute it on its first request).
        Returns the slots filled; a failure costs only that saving, so it is not an error."""
        if self.server.parallel < 2:
            return 0
        base, file = self.server.base, {"filename": "prefix.bin"}
        try:
            body = {"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0.0, "id_slot": 0}
            async with self._session.post(self.server.url + "/chat/completions", json=body) as resp:
                await resp.read()
            async with self._session.post(base + "/slots/0?action=save", json=file) as resp:
                if resp.status != 200:
                    return 0
            statuses = []
            for k in range(1, self.server.parallel):  # llama-server runs slot actions one at a time anyway
                async with self._session.post(base + f"/slots/{k}?action=restore", json=file) as resp:
                    statuses.append(resp.status)
            return 1 + statuses.count(200)
        except Exception:  # noqa: BLE001 -- an optimisation only; the sampler's own request follows
            return 0

    async def close(self) -> None:
        await super().close()
        if self.server is not None and self.server.proc is not None and self.server.proc.poll() is None:
            self.metrics = await asyncio.to_thread(self._read_metrics)
            if self.metrics and self.log_path:
                write_json(Path(self.log_path).with_suffix(".json"), self.metrics)
        self.__exit__()

    def _read_metrics(self) -> dict[str, float]:
        import httpx

        try:
            return server_metrics(httpx.get(self.server.base + "/metrics", timeout=10).text)
        except httpx.HTTPError:
            return {}

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.__exit__(*exc)
        if self._slot_dir is not None:
            self._slot_dir.cleanup()
            self._slot_dir = None


class InProcessLlamaTeacher(Teacher):
    """llama-cpp-python's `Llama` in this process. A Llama object is not thread-safe, so requests
    run one at a time in a worker thread (the event loop stays free to write finished samples)."""

    def __init__(self, model: str, n_ctx: int = 2048, n_threads: int | None = None):
        self.name = model
        self.gguf = _gguf(model)
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.llm = None
        self._lock = None

    def __enter__(self) -> InProcessLlamaTeacher:
        from distill.llamacpp import load_gguf

        self.llm = load_gguf(self.gguf, n_ctx=self.n_ctx, n_threads=self.n_threads)
        return self

    def __exit__(self, *exc) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    async def open(self, max_concurrent: int, timeout_s: float) -> None:
        self._lock = asyncio.Lock()

    def _complete(self, messages: list[dict], params: dict) -> dict:
        try:
            return self.llm.create_chat_completion(
                messages=messages, temperature=params.get("temperature", 0.6), top_p=params.get("top_p", 0.95),
                max_tokens=params.get("max_tokens"), seed=params.get("seed"))
        except ValueError as e:  # e.g. the prompt does not fit n_ctx: the same request fails again
            raise TeacherError("client_error", str(e)[:300]) from None

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        if self._lock is None:
            await self.open(1, 0)
        async with self._lock:
            data = await asyncio.to_thread(self._complete, messages, params)
        return parse_chat_response(data)

