"""llama.cpp's own tools, built by `make setup` from the pinned source: found through one helper, and
llama-server started on loopback, serving, and gone when its parent is killed."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from distill.errors import DistillError
from distill.llamacpp import TOOLS, LlamaServer, tool


def test_every_tool_is_built_and_runs():
    """Each wrapper finds its binary and the shared libraries of its build (a wrong library path fails
    with "error while loading shared libraries" and no usage text)."""
    for name in TOOLS:
        flag = "--help" if name == "llama-quantize" else "--version"  # llama-quantize has no --version
        out = subprocess.run([str(tool(name)), flag], capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        assert ("usage:" if name == "llama-quantize" else "version:") in text, f"{name} {flag}: {text[-300:]}"


def test_missing_tool_says_run_make_setup(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILL_LLAMA_BIN", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(DistillError, match="make setup"):
        tool("llama-server")


def test_flash_attention_is_off_only_where_no_layer_can_reach_a_gpu(smol_gguf, monkeypatch):
    import distill.llamacpp as llamacpp

    def fa(gpu_build: bool, gpu_layers: int | None) -> bool:
        monkeypatch.setattr(llamacpp, "llama_cpp_has_gpu", lambda: gpu_build)
        cmd = LlamaServer(smol_gguf, gpu_layers=gpu_layers).command()
        return "-fa" not in cmd  # `auto`: llama-server picks flash attention itself

    assert not fa(gpu_build=False, gpu_layers=None)  # this machine: CPU, where ggml's FA kernel is slower
    assert fa(gpu_build=True, gpu_layers=None)  # a GPU build offloads by default: keep FA (laptop serve)
    assert fa(gpu_build=True, gpu_layers=999)
    assert not fa(gpu_build=True, gpu_layers=0)  # all layers kept on the CPU


def test_server_answers_with_parallel_slots(smol_gguf, tmp_path):
    with LlamaServer(smol_gguf, alias="smol", parallel=2, ctx=512, log_path=tmp_path / "server.log") as server:
        props = httpx.get(server.base + "/props", timeout=10).json()
        assert props["total_slots"] == 2
        r = httpx.post(server.url + "/chat/completions", timeout=60, json={
            "model": "smol", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0


def test_server_dies_with_its_parent(smol_gguf, tmp_path):
    """A parent killed with SIGKILL runs no cleanup; the server must still go (parent-death signal)."""
    script = textwrap.dedent(f"""
        import sys, time
        from distill.llamacpp import LlamaServer
        s = LlamaServer({str(smol_gguf)!r}, ctx=256).__enter__()
        print(s.proc.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # the server (trampoline exec'd into the wrapper, then llama-server) is running
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("llama-server outlived its SIGKILLed parent")
