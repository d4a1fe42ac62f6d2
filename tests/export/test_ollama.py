"""Ollama's files for an export, checked with Go's own text/template (the engine Ollama runs;
tests/ollama_template.go): the TEMPLATE parses, carries `.Thinking` between `<think>`
tags inside the range over `.Messages` (what makes Ollama call a model thinking-capable), and
renders exactly what the GGUF's Jinja template renders, for think on, think off and earlier turns.
`params` holds stop tokens, R1 sampling and a num_ctx read from the GGUF."""

from __future__ import annotations

import json
import re

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from ollama_check import go_check, tiny_gguf

from distill.export import ollama
from distill.train.templates import chat_template, inference_template

BOS = {"chatml": "", "llama3": "<|begin_of_text|>"}


def jinja(style: str, prefill: bool, messages: list[dict], **kw) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(inference_template(chat_template(style, prefill))).render(
        messages=messages, add_generation_prompt=True, bos_token=BOS[style], **kw)
    return text.removeprefix(BOS[style])  # Ollama adds the model's BOS itself


R1 = "<think>\nfirst I add\n</think>\n\nThe answer is \\boxed{5}."
TALK = [{"role": "user", "content": "What is 3 + 2?"}, {"role": "assistant", "content": R1},
        {"role": "user", "content": "And 4 + 4?"}]


def ollama_messages(messages: list[dict]) -> list[dict]:
    """What Ollama hands a template: thinking apart from the content, as its API and CLI keep it."""
    out = []
    for m in messages:
        thinking, _, answer = m["content"].rpartition("</think>")
        out.append({"Role": m["role"], "Content": answer.strip() if thinking else m["content"],
                    "Thinking": thinking.removeprefix("<think>").strip()})
    return out


@pytest.mark.parametrize("style", ["chatml", "llama3"])
@pytest.mark.parametrize("prefill", [True, False])
def test_go_template_renders_what_the_gguf_template_renders(style, prefill, tmp_path):
    system = [{"role": "system", "content": "Answer briefly."}]
    cases = [
        ({"Messages": ollama_messages(TALK[:1])}, jinja(style, prefill, TALK[:1])),
        ({"Messages": ollama_messages(TALK[:1]), "Think": True, "IsThinkSet": True}, jinja(style, prefill, TALK[:1])),
        ({"Messages": ollama_messages(TALK[:1]), "Think": False, "IsThinkSet": True},
         jinja(style, prefill, TALK[:1], enable_thinking=False)),
        ({"Messages": ollama_messages(TALK)}, jinja(style, prefill, TALK)),
        ({"System": "Answer briefly.", "Messages": ollama_messages(system + TALK)}, jinja(style, prefill, system + TALK)),
    ]
    got = go_check(ollama.go_template(style, prefill), [c for c, _ in cases], tmp_path)
    assert got["renders"] == [want for _, want in cases]
    assert "first I add" not in got["renders"][3]  # earlier thinking is not replayed
    assert got["renders"][2].endswith("<think>\n\n</think>\n\n")  # --think=false
    assert (got["opening_tag"], got["closing_tag"], got["in_message_loop"]) == ("<think>", "</think>", True)


def test_a_continued_turn_keeps_its_thinking(tmp_path):
    talk = ollama_messages(TALK[:2])
    got = go_check(ollama.go_template("chatml"), [{"Messages": talk, "Think": True, "IsThinkSet": True}], tmp_path)
    assert got["renders"][0].endswith("<|im_start|>assistant\n<think>\nfirst I add\n</think>\n\n"
                                      "The answer is \\boxed{5}.")


def test_llama3_template_has_no_literal_bos():
    assert "<|begin_of_text|>" not in ollama.go_template("llama3")


@pytest.mark.parametrize("train_ctx, num_ctx", [(8192, 8192), (131072, 32768)])
def test_files_carry_thinking_stops_sampling_and_context(tmp_path, train_ctx, num_ctx):
    gguf = tiny_gguf(tmp_path / "s-Q4_K_M.gguf", train_ctx)
    written = ollama.write_files(tmp_path, gguf, "<|eot_id|>", prefill_think=True)
    assert sorted(written) == ["Modelfile", "params", "template"]
    params = json.loads((tmp_path / "params").read_text())
    assert params == {"stop": ["<|eot_id|>", "<|start_header_id|>"], "temperature": 0.6, "top_p": 0.95,
                      "num_ctx": num_ctx}
    modelfile = (tmp_path / "Modelfile").read_text()
    template = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S).group(1)
    assert template == (tmp_path / "template").read_text() == ollama.go_template("llama3", True)
    assert "FROM ./s-Q4_K_M.gguf" in modelfile and f"PARAMETER num_ctx {num_ctx}" in modelfile
    assert 'PARAMETER stop "<|eot_id|>"' in modelfile and "PARAMETER temperature 0.6" in modelfile
    assert "PARAMETER top_p 0.95" in modelfile
    got = go_check(template, [{"Messages": [{"Role": "user", "Content": "hi"}]}], tmp_path)
    assert got["opening_tag"] == "<think>"


def test_an_unknown_format_gets_no_template(tmp_path):
    """A stop token distill never writes: Ollama must convert the GGUF's own template instead."""
    gguf = tiny_gguf(tmp_path / "s.gguf", 4096)
    assert ollama.write_files(tmp_path, gguf, "<|end|>") == ["Modelfile", "params"]
    assert "TEMPLATE" not in (tmp_path / "Modelfile").read_text()
    assert "stop" not in json.loads((tmp_path / "params").read_text())
