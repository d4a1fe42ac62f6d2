"""The exported student through llama.cpp's own server and `distill serve`'s chat page.

A hand-wired student (tests/bigram.py: it thinks "One two three", then answers) exported with the
GGUF template: llama-server, started with `--reasoning-format deepseek`, must return its thinking
in `reasoning_content` and only the answer in `content` (streamed and not), replay earlier turns
without their thinking, and answer at once when thinking is switched off. Then `distill serve` as
a user runs it, driven in headless Chromium: load the page, ask, see the answer and the thinking
folded, keep a screenshot in the test's tmp dir."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest
from bigram import ANSWER, THINKING

from distill.llamacpp import LlamaServer, free_port

ASK = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def server(bigram_gguf, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "llama-server.log"
    with LlamaServer(bigram_gguf, alias="bigram", ctx=512, log_path=log, threads=1,
                     extra_args=["--reasoning-format", "deepseek"]) as s:
        yield s


def chat(server, messages, **body) -> dict:
    r = httpx.post(server.url + "/chat/completions", timeout=60,
                   json={"messages": messages, "temperature": 0, "max_tokens": 64, **body})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]


def test_reasoning_content_round_trip(server):
    message = chat(server, ASK)
    assert message["reasoning_content"].strip() == THINKING
    assert message["content"] == ANSWER  # no thinking, no stray </think>
    parts = {"reasoning_content": "", "content": ""}
    with httpx.stream("POST", server.url + "/chat/completions", timeout=60,
                      json={"messages": ASK, "temperature": 0, "max_tokens": 64, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                for key in parts:
                    parts[key] += delta.get(key) or ""
    assert parts["reasoning_content"].strip() == THINKING and parts["content"] == ANSWER


def test_earlier_thinking_is_not_replayed_and_thinking_can_be_off(server):
    talk = ASK + [{"role": "assistant", "content": f"<think>\n{THINKING}\n</think>\n\n{ANSWER}"},
                  {"role": "user", "content": "And 3 + 3?"}]
    prompt = httpx.post(server.base + "/apply-template", json={"messages": talk}, timeout=30).json()["prompt"]
    assert ANSWER in prompt and THINKING not in prompt and prompt.endswith("<think>\n")
    again = chat(server, talk[:1] + [{"role": "assistant", "content": ANSWER, "reasoning_content": THINKING}] + talk[2:])
    assert again["content"] == ANSWER and again["reasoning_content"].strip() == THINKING
    off = chat(server, ASK, chat_template_kwargs={"enable_thinking": False})
    assert off["content"] == ANSWER and not off.get("reasoning_content")


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium: `apt-get install chromium` (make setup installs it where apt can)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: `pip install -e .[dev]`")
    return chromium


def test_serve_page_shows_the_answer_and_folds_the_thinking(bigram_gguf, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = _browser()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "distill", "serve", str(bigram_gguf), "--port", str(port),
                             "--temperature", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        out = ""
        deadline = time.monotonic() + 300
        while "chat page:" not in out and time.monotonic() < deadline and proc.poll() is None:
            out += proc.stdout.readline()
        assert "chat page:" in out, out
        api = re.search(r"(http://127\.0\.0\.1:\d+/v1)", out).group(1)
        assert httpx.get(api + "/models", timeout=10).status_code == 200  # the API is llama-server's
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=120_000)
            box.fill("What is 2 + 2?")
            box.press("Enter")
            page.get_by_text("boxed{4}.", exact=False).wait_for(timeout=120_000)
            page.get_by_text("Thought (3 words)").wait_for(timeout=30_000)  # folded once the answer is in
            messages = page.get_by_test_id("stChatMessage").all_inner_texts()
            folds = page.locator("[data-testid=stExpander] details").evaluate_all(
                "els => els.map(e => ({open: e.open, text: e.innerText}))")
            shot = tmp_path / "serve.png"
            page.screenshot(path=str(shot), full_page=True)
            page.locator("[data-testid=stExpander] summary").click()  # unfold: the thinking is inside
            page.get_by_text(THINKING).wait_for(timeout=30_000)
            unfolded = page.locator("[data-testid=stExpander] details").evaluate("e => e.open")
            browser.close()
        print(f"screenshot: {shot}")
        assert len(messages) == 2 and "What is 2 + 2?" in messages[0] and ANSWER in messages[1]
        assert len(folds) == 1 and not folds[0]["open"] and "Thought (3 words)" in folds[0]["text"]
        assert THINKING not in messages[1] and unfolded  # hidden while folded, there when unfolded
        assert shot.stat().st_size > 10_000
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    time.sleep(1)
    with pytest.raises(httpx.TransportError):  # neither the page nor llama-server outlives `distill serve`
        httpx.get(api + "/models", timeout=2)


def test_a_taken_port_is_a_clear_error(tmp_path):
    import socket

    from distill.errors import DistillError
    from distill.laptop.serve import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(DistillError, match=f"port {s.getsockname()[1]} on 127.0.0.1 is taken; choose another"):
            serve(tmp_path / "any.gguf", port=s.getsockname()[1])
