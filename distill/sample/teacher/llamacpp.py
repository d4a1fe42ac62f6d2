"""A local GGUF through llama.cpp: its OpenAI-compatible server (`llama_cpp.server`) started on
127.0.0.1 for the run (requests go through the same HTTP client as a remote R1), or in process
(`teacher.in_process: true`: no server, no port; one generation at a time in a worker thread).

    teacher:
      backend: llamacpp
      model: embedded:smollm2-135m-instruct   # or a .gguf path
      in_process: true
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from distill.assets import embedded_gguf, is_embedded
from distill.errors import DistillError
from distill.sample.teacher.base import Generation, Teacher, TeacherError
from distill.sample.teacher.openai import OpenAITeacher, parse_chat_response


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppServer:
    """`python -m llama_cpp.server` as a child process; `url` is its `/v1` base."""

    def __init__(self, gguf: Path, alias: str, n_ctx: int = 2048, n_threads: int | None = None,
                 log_path: Path | None = None, start_timeout_s: float = 180):
        self.gguf, self.alias, self.n_ctx = gguf, alias, n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LlamaCppServer:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf),
               "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads),
               # Streamed requests queue instead of cutting off the one being streamed.
               "--interrupt_requests", "False"]
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:] if self.log_path else ""
                raise DistillError(f"llama.cpp server exited with code {self.proc.returncode}:\n{tail}")
            try:
                if httpx.get(self.url + "/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.__exit__()
        raise DistillError(f"llama.cpp server did not answer within {self.start_timeout_s:.0f}s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _gguf(model: str) -> Path:
    gguf = embedded_gguf(model) if is_embedded(model) else Path(model)
    if not gguf.exists():
        raise DistillError(f"teacher GGUF {gguf} not found; set `teacher.model` to a .gguf file")
    return gguf


class LlamaCppTeacher(OpenAITeacher):
    def __init__(self, model: str, n_ctx: int = 2048, n_threads: int | None = None,
                 log_path: Path | None = None):
        gguf = _gguf(model)
        self.server = LlamaCppServer(gguf, model, n_ctx, n_threads, log_path)
        super().__init__(model, [self.server.url])

    def __enter__(self) -> LlamaCppTeacher:
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)


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
        import asyncio

        self._lock = asyncio.Lock()

    def _complete(self, messages: list[dict], params: dict) -> dict:
        try:
            return self.llm.create_chat_completion(
                messages=messages, temperature=params.get("temperature", 0.6), top_p=params.get("top_p", 0.95),
                max_tokens=params.get("max_tokens"), seed=params.get("seed"))
        except ValueError as e:  # e.g. the prompt does not fit n_ctx: the same request fails again
            raise TeacherError("client_error", str(e)[:300]) from None

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        import asyncio

        if self._lock is None:
            await self.open(1, 0)
        async with self._lock:
            data = await asyncio.to_thread(self._complete, messages, params)
        return parse_chat_response(data)
