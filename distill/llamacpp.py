"""llama.cpp, shared by the stages that run GGUF files (teacher, eval, export, laptop): loading a GGUF
in process (llama-cpp-python), rendering its chat template, the quant names llama.cpp knows, and
llama.cpp's own tools built from the same source as the wheel (`make setup`, scripts/build_llama_cpp.sh).

    tool("llama-imatrix")                         # the binary (a wrapper in .venv/bin that finds its libs)
    quantize_file(src, dst, "Q8_0")               # llama-quantize through a .part file
    requantized(Path("x.Q4_1.gguf"), "Q8_0")      # a quantized file converted once, cached (served_copy)
    with LlamaServer(gguf, parallel=8, ctx=4096) as server:   # llama-server on 127.0.0.1, healthy
        server.url                                # "http://127.0.0.1:PORT/v1" (OpenAI-compatible)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from distill.errors import DistillError

# llama_ftype values from llama.h (stable across llama.cpp versions).
QUANT_TYPES = {
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_M": 12,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
}


def load_gguf(path: str | Path, n_ctx: int = 2048, n_threads: int | None = None, **kwargs):
    from llama_cpp import Llama

    path = Path(path)
    if not path.exists():
        raise DistillError(f"{path} not found")
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), verbose=False, **kwargs)


def render_prompt(llm, messages: list[dict], chat_template: str | None = None) -> str:
    """The prompt text exactly as the GGUF's embedded chat template renders it."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = chat_template or llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise DistillError("this GGUF has no tokenizer.chat_template; re-export it with `distill export`")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(DistillError(msg))
    bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "ignore") if llm.token_bos() >= 0 else ""
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token=bos,
                                            eos_token="")


TOOLS = ("llama-server", "llama-imatrix", "llama-perplexity", "llama-quantize")


def tool(name: str) -> Path:
    """One of llama.cpp's tools: `$DISTILL_LLAMA_BIN/name`, else the wrapper `make setup` writes
    into the environment's bin/ (it sets the library path of the cached build), else PATH."""
    if name not in TOOLS:
        raise ValueError(f"unknown llama.cpp tool {name!r}; known: {TOOLS}")
    for folder in (os.environ.get("DISTILL_LLAMA_BIN"), str(Path(sys.prefix) / "bin")):
        if folder and (Path(folder) / name).is_file():
            return Path(folder) / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise DistillError(f"llama.cpp's `{name}` is not built; run `make setup` (it builds llama.cpp's tools "
                       "once, beside the llama-cpp-python wheel)")


@lru_cache(maxsize=1)
def llama_cpp_has_gpu() -> bool:
    """Whether llama.cpp was built for a GPU (setup's `cuda` flavour, Metal, ...) and sees a device."""
    try:
        out = subprocess.run([str(tool("llama-server")), "--list-devices"], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired, DistillError):
        return False
    return any(line.strip().startswith(("CUDA", "ROCm", "Vulkan", "Metal")) for line in
               (out.stdout + out.stderr).splitlines())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs a command with the parent-death signal set (Linux), so a server never outlives a killed parent.
# An exec trampoline rather than preexec_fn, which is unsafe once threads run.
_DIE_WITH_PARENT = ("import ctypes, os, signal, sys\n"
                    "try:\n    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
                    "except (OSError, AttributeError):\n    pass\n"
                    "os.execv(sys.argv[1], sys.argv[1:])")


def popen_tied(cmd: list[str], **kwargs) -> subprocess.Popen:
    """`subprocess.Popen(cmd)` for a child that must not outlive this process (a server we started)."""
    return subprocess.Popen([sys.executable, "-c", _DIE_WITH_PARENT, *cmd], **kwargs)


def omp_spin(environ) -> dict[str, str]:
    """OpenMP's wait between llama.cpp's per-operation barriers, unless the caller chose one: a short
    spin, then sleep. Measured here (2 threads, 1 slot, tokens/s idle / with 4 busy processes on the
    2 cores): OMP_WAIT_POLICY=PASSIVE 39 / 14.5 (a futex wake-up at every barrier), libgomp's default
    spin 78 / 4.6 (a spinning worker takes the core the other thread needs), GOMP_SPINCOUNT=1000
    74 / 13.6."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return {}
    return {"GOMP_SPINCOUNT": "1000"}


def run_tool(cmd: list[str], what: str, timeout_s: float | None = None) -> str:
    """Run one of llama.cpp's tools; its log, or a DistillError with the log's tail."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DistillError(f"{what} did not finish within {timeout_s:.0f}s") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise DistillError(f"{what} failed (exit {proc.returncode}):\n{log.strip()[-1200:]}")
    return log


def run_tool_into(cmd: list[str], what: str, part: Path, dst: Path) -> str:
    """`run_tool` a tool that writes `part`, then move it to `dst`: a failed or killed run leaves no file
    that a rerun would take for finished."""
    try:
        log = run_tool(cmd, what)
    except DistillError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dst)
    return log


def quantize_file(src: Path, dst: Path, quant: str, imatrix: Path | None = None, threads: int | None = None,
                  allow_requantize: bool = False) -> str:
    """llama-quantize `src` into `dst` at `quant` (with an importance matrix if given); its log.
    `allow_requantize`: `src` may itself be quantized (the result then carries both roundings)."""
    if quant not in QUANT_TYPES:
        raise DistillError(f"unknown quant {quant!r}; choose from {sorted(QUANT_TYPES)}")
    part = Path(dst).with_suffix(".gguf.part")
    cmd = [str(tool("llama-quantize"))] + (["--imatrix", str(imatrix)] if imatrix else [])
    cmd += ["--allow-requantize"] if allow_requantize else []
    cmd += [str(src), str(part), quant, str(threads or os.cpu_count() or 1)]
    return run_tool_into(cmd, f"llama-quantize {Path(src).name} to {quant}", part, Path(dst))


def requantized(gguf: Path, quant: str) -> Path:
    """`gguf` converted to `quant` once and cached (`served_copy`), for a server whose batched CPU kernels
    are faster on another type than the file ships in: the embedded teacher ships as Q4_1, and llama.cpp
    decodes 16 slots of it faster as Q8_0 (bench/sampler.py)."""
    gguf = Path(gguf)
    return served_copy(gguf, quant, lambda out: quantize_file(gguf, out, quant, allow_requantize=True))


def served_copy(source: Path, kind: str, make: Callable[[Path], object], variant: str | None = None) -> Path:
    """The GGUF that `make(out)` derives from `source` (a file or an HF folder) for llama-server, made once
    and cached as `cache_dir()/served/<source name>-<key>.<kind>.gguf`. The key hashes the source's path,
    the sizes and times of its files (hashing 16 GB of weights would take minutes), `kind` and `variant`
    (e.g. the chat template embedded). `make` writes `out` atomically.

    Runs that need the same file wait for one another on a lock instead of both converting. Beside each
    file, `<file>.source.json` records its source; a file whose source has since changed or gone can never
    be asked for again, and is removed whenever another is made (a 135M student in F16 is 270 MB, and every
    training run converts one)."""
    import hashlib
    import json

    from filelock import FileLock

    from distill.assets import cache_dir

    source = Path(source).resolve()
    stamp = _stamp(source)
    key = hashlib.sha256(json.dumps([str(source), stamp, kind, variant]).encode()).hexdigest()[:16]
    out = cache_dir() / "served" / f"{source.name.removesuffix('.gguf')}-{key}.{kind}.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.with_suffix(".lock")):
        if out.exists():
            return out
        make(out)
        tmp = out.with_suffix(".source.json.part")
        tmp.write_text(json.dumps({"source": str(source), "stamp": stamp, "variant": variant}))
        os.replace(tmp, out.with_suffix(".source.json"))
    _prune_served(out.parent)
    return out


def _stamp(source: Path) -> list:
    files = sorted(f for f in source.iterdir() if f.is_file()) if source.is_dir() else [source]
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _prune_served(folder: Path) -> None:
    """Remove the served files whose source changed or is gone, or that record none (made before sources
    were recorded), skipping any another process holds."""
    from filelock import FileLock, Timeout

    for gguf in sorted({*folder.glob("*.gguf"), *(p.with_suffix("") for p in folder.glob("*.gguf.part"))}):
        lock_path = gguf.with_suffix(".lock")
        try:
            with FileLock(lock_path, timeout=0):
                gguf.with_suffix(".gguf.part").unlink(missing_ok=True)  # left by a killed conversion
                if gguf.exists() and _current(gguf.with_suffix(".source.json")):
                    continue
                for f in (gguf, gguf.with_suffix(".source.json"), lock_path):
                    f.unlink(missing_ok=True)
        except Timeout:
            continue  # being made or pruned by another run


def _current(record_path: Path) -> bool:
    import json

    try:
        record = json.loads(record_path.read_text())
        source = Path(record["source"])
        return source.exists() and _stamp(source) == record["stamp"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


class LlamaServer:
    """llama.cpp's `llama-server` as a child process on 127.0.0.1: `parallel` slots with continuous
    batching, each holding `ctx` tokens, prompt caching on (a shared system/few-shot prefix is computed
    once per slot). `url` is the OpenAI-compatible `/v1` base; `alias` the model name it serves.

    `extra_args` go to the server as they are (e.g. ["--reasoning-format", "deepseek"]);
    `gpu_layers` offloads layers where llama.cpp was built with CUDA; `port` is a free one unless given.
    A subclass serving another program overrides `command()` and `program` (distill.evaluate.served.VLLMServer)."""

    program = "llama-server"

    def __init__(self, gguf: str | Path, alias: str | None = None, parallel: int = 1, ctx: int = 4096,
                 threads: int | None = None, log_path: Path | None = None, start_timeout_s: float = 300,
                 extra_args: list[str] | None = None, gpu_layers: int | None = None, port: int | None = None):
        self.gguf = Path(gguf)
        if not self.gguf.exists():
            raise DistillError(f"GGUF {self.gguf} not found")
        self.alias = alias or self.gguf.stem
        self.parallel, self.ctx = max(1, parallel), ctx
        self.threads = threads or os.cpu_count() or 1
        self.log_path, self.start_timeout_s = log_path, start_timeout_s
        self.extra_args, self.gpu_layers = list(extra_args or []), gpu_layers
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [str(tool("llama-server")), "-m", str(self.gguf), "--alias", self.alias,
               "--host", "127.0.0.1", "--port", str(self.port),
               # llama-server's -c is the total KV cache, split evenly between the slots.
               "-c", str(self.ctx * self.parallel), "--parallel", str(self.parallel),
               "-t", str(self.threads), "-tb", str(self.threads), "--no-webui"]
        if self.gpu_layers is not None:
            cmd += ["-ngl", str(self.gpu_layers)]
        if self.gpu_layers == 0 or not llama_cpp_has_gpu():
            # On CPU, ggml's flash-attention kernel (llama-server's `auto` picks it) is the slower path:
            # measured here, 16 slots sharing a ~850-token prefix, 64 x 64 new tokens: 113 tokens/s with
            # it, 128-144 without. A GPU build offloads by default and keeps `auto`.
            cmd += ["-fa", "off"]
        return cmd + self.extra_args

    def __enter__(self) -> LlamaServer:
        import httpx

        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path or os.devnull, "ab")
        env = {**os.environ, **omp_spin(os.environ)}
        self.proc = popen_tied(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:] if self.log_path else ""
                raise DistillError(f"{self.program} exited with code {self.proc.returncode} while loading "
                                   f"{self.gguf.name}:\n{tail}")
            try:  # 503 while the model loads, 200 once it serves
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise DistillError(f"{self.program} did not become healthy within {self.start_timeout_s:.0f}s "
                           f"(log: {self.log_path})")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
