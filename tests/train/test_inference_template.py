"""The template runtimes render (the GGUF's): a training conversation renders exactly as in
training; earlier turns lose their thinking, the current turn keeps it (from `<think>` in the
content or from `reasoning_content`); `enable_thinking` false closes the block at once."""

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from distill.train.templates import chat_template, inference_template

ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
R1 = "<think>\nadd the units\n</think>\n\nThe answer is \\boxed{5}."
TALK = [{"role": "user", "content": "What is 3 + 2?"}, {"role": "assistant", "content": R1},
        {"role": "user", "content": "And 4 + 4?"}]
START = {"chatml": "<|im_start|>assistant\n", "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n"}


def render(template: str, messages: list[dict], **kw) -> str:
    return ENV.from_string(template).render(messages=messages, bos_token="<s>", **kw)


def training_render(style: str, messages: list[dict]) -> str:
    """The training template as TRL renders it, the {% generation %} markers being a no-op there."""
    import re

    plain = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", chat_template(style, prefill_think=True))
    return render(plain, messages)


@pytest.mark.parametrize("style", ["chatml", "llama3"])
def test_a_training_conversation_renders_as_in_training(style):
    one_turn = TALK[:2]
    assert render(inference_template(chat_template(style)), one_turn) == training_render(style, one_turn)
    assert "add the units" in training_render(style, one_turn)


@pytest.mark.parametrize("style", ["chatml", "llama3"])
def test_earlier_turns_lose_their_thinking(style):
    text = render(inference_template(chat_template(style)), TALK, add_generation_prompt=True)
    assert "add the units" not in text and "<think>\nadd" not in text
    assert START[style] + "The answer is \\boxed{5}." in text  # the earlier answer stays
    assert text.endswith(START[style] + "<think>\n")  # the prefill, as the student was trained


def test_reasoning_content_of_the_current_turn_is_rendered_as_thinking():
    """llama.cpp's template analysis passes reasoning apart, as `reasoning_content`; the template
    must show it in <think> tags for llama.cpp to find the tags (and parse replies)."""
    turn = [TALK[0], {"role": "assistant", "content": "The answer is \\boxed{5}.", "reasoning_content": "add the units"}]
    assert render(inference_template(chat_template("chatml")), turn) == training_render("chatml", TALK[:2])
    earlier = turn + [TALK[2]]
    assert "add the units" not in render(inference_template(chat_template("chatml")), earlier)


@pytest.mark.parametrize("prefill", [True, False])
def test_enable_thinking_false_closes_the_block(prefill):
    template = inference_template(chat_template("chatml", prefill_think=prefill))
    off = render(template, TALK[:1], add_generation_prompt=True, enable_thinking=False)
    assert off.endswith(START["chatml"] + "<think>\n\n</think>\n\n")
    on = render(template, TALK[:1], add_generation_prompt=True, enable_thinking=True)
    assert on == render(template, TALK[:1], add_generation_prompt=True)
    assert on.endswith(START["chatml"] + ("<think>\n" if prefill else ""))
