"""`distill serve GGUF`: an exported student on 127.0.0.1, for programs and for people.

llama.cpp's own `llama-server` gives the OpenAI-compatible API (`/v1/chat/completions`), with the
reasoning parsed out into `reasoning_content` (`--reasoning-format deepseek`), so Open WebUI, the
`openai` client or any chat app can fold it. Beside it, a chat page made with Streamlit's chat
elements (distill/laptop/web.py) talks to that API and shows each reply's thinking folded. The
context is sized as `distill chat` sizes it. Ctrl-C stops both; neither outlives this process.

    distill serve export/smol/smol-Q4_K_M.gguf --port 8501
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distill.errors import DistillError

WEB_PAGE = Path(__file__).with_name("web.py")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def page_command(port: int, api_url: str, model: str, temperature: float) -> list[str]:
    """Streamlit running the chat page on 127.0.0.1 only, without telemetry or a browser of its own."""
    return [sys.executable, "-m", "streamlit", "run", str(WEB_PAGE),
            "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal", "--",
            "--api", api_url, "--model", model, "--temperature", str(temperature)]


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DistillError(f"the chat page (Streamlit) exited with code {proc.returncode}:\n"
                               + log.read_text(errors="replace")[-1500:])
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise DistillError(f"the chat page did not answer within {timeout_s:.0f}s (log: {log})")


def serve(gguf: Path, port: int = 8501, api_port: int | None = None, ctx: int | None = None, parallel: int = 1,
          temperature: float = 0.6, threads: int | None = None) -> None:
    from rich.console import Console

    from distill.export.context import read_context
    from distill.laptop.session import choose_ctx, free_memory
    from distill.llamacpp import LlamaServer, popen_tied

    if importlib.util.find_spec("streamlit") is None:
        raise DistillError("the chat page needs Streamlit, which is not installed; run `make setup` "
                           "(or `pip install 'streamlit>=1.40,<2'`)")
    console = Console()
    for p, what, flag in ((port, "chat page", "--port"), (api_port, "API", "--api-port")):
        if p and not _port_free(p):
            raise DistillError(f"port {p} on 127.0.0.1 is taken; choose another with {flag} (the {what})")
    n_ctx, said = choose_ctx(read_context(gguf), ctx, free_memory(), slots=parallel)
    console.print(f"[dim]{said}[/]", highlight=False, soft_wrap=True)
    logs = Path(tempfile.mkdtemp(prefix="distill-serve-"))
    with LlamaServer(gguf, alias=gguf.stem, parallel=parallel, ctx=n_ctx, port=api_port, threads=threads,
                     log_path=logs / "llama-server.log", extra_args=["--reasoning-format", "deepseek"]) as server:
        with open(logs / "page.log", "ab") as log:
            page = popen_tied(page_command(port, server.url, server.alias, temperature), stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_healthy(page, f"http://127.0.0.1:{port}/_stcore/health", logs / "page.log")
            console.print(f"API (OpenAI-compatible, reasoning in `reasoning_content`): {server.url}\n"
                          f"chat page: http://127.0.0.1:{port}\n[dim]logs in {logs}; Ctrl-C stops both[/]",
                          highlight=False, soft_wrap=True)
            page.wait()
            raise DistillError(f"the chat page stopped (code {page.returncode}); see {logs / 'page.log'}")
        except KeyboardInterrupt:
            console.print("stopping")
        finally:
            if page.poll() is None:
                page.terminate()
                try:
                    page.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    page.kill()
