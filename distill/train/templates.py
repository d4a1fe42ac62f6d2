"""Chat templates for reasoning students.

The assistant turn keeps `<think>...</think>` in the training text (R1-Distill's own template
strips it) and is wrapped in `{% generation %}` so `assistant_only_loss` masks the prompt only.
The generation prompt may prefill "<think>\\n", baked in so llama.cpp and Ollama see the same.

    tok.chat_template = chat_template(style_for(tok), prefill_think=True)
"""

from __future__ import annotations

from distill.errors import DistillError

STYLES = {
    # style: (turn start, turn end / stop token)
    "chatml": ("<|im_start|>{role}\n", "<|im_end|>"),
    "llama3": ("<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>"),
}


def style_for(tokenizer, requested: str = "auto") -> str:
    """The template style: the recipe's choice, or the one whose special tokens the vocab has."""
    if requested != "auto":
        return requested
    vocab = tokenizer.get_vocab()
    for style, (_, stop) in STYLES.items():
        if stop in vocab:
            return style
    raise DistillError("cannot tell the chat format of this tokenizer; set `student.chat_template`")


def stop_token(style: str) -> str:
    return STYLES[style][1]


def chat_template(style: str, prefill_think: bool = True) -> str:
    start, stop = STYLES[style]
    open_turn = "'" + start.replace("\n", "\\n").replace("{role}", "' + message['role'] + '") + "'"
    assistant = "'" + start.replace("\n", "\\n").replace("{role}", "assistant") + "'"
    sep = "\\n" if style == "chatml" else ""
    bos = "{{- bos_token -}}\n" if style == "llama3" else ""
    prefill = "{{- '<think>\\n' -}}" if prefill_think else ""
    return (
        bos
        + "{%- for message in messages -%}\n"
        + "{%- if message['role'] == 'assistant' -%}\n"
        + f"{{{{- {assistant} -}}}}\n"
        + f"{{%- generation -%}}{{{{- message['content'] + '{stop}' -}}}}{{%- endgeneration -%}}{{{{- '{sep}' -}}}}\n"
        + "{%- else -%}\n"
        + f"{{{{- {open_turn} + message['content'] + '{stop}{sep}' -}}}}\n"
        + "{%- endif -%}\n"
        + "{%- endfor -%}\n"
        + f"{{%- if add_generation_prompt -%}}{{{{- {assistant} -}}}}{prefill}{{%- endif -%}}"
    )


def apply_to(tokenizer, style: str, prefill_think: bool) -> None:
    """Set the template, the EOS/stop token and a pad token on a tokenizer in place."""
    tokenizer.chat_template = chat_template(style, prefill_think)
    stop = stop_token(style)
    if stop not in tokenizer.get_vocab():
        raise DistillError(f"the tokenizer has no {stop!r} token; set `student.chat_template` to its format")
    tokenizer.eos_token = stop
    if tokenizer.pad_token is None or tokenizer.pad_token == stop:
        # A pad distinct from EOS where the vocab has one, so EOS stays in the loss.
        for cand in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<|end_of_text|>"):
            if cand in tokenizer.get_vocab() and cand != stop:
                tokenizer.pad_token = cand
                break
        else:
            tokenizer.pad_token = stop


# What runtimes see of a conversation (llama.cpp, LM Studio, Ollama's import): an assistant turn
# before the last user message keeps only its answer, as R1-Distill's templates do (earlier
# reasoning wastes context and is not what the student was trained on); the current turn keeps its
# thinking, from `<think>` in the content or from `reasoning_content`, so a training conversation
# renders exactly as in training and llama.cpp's template analysis finds the `<think>` tags.
_THINKING_VIEW = """{%- set ns = namespace(last_user=-1, view=[]) -%}
{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}
{%- for m in messages -%}
{%- if m['role'] == 'assistant' -%}
{%- set text = m['content'] or '' -%}
{%- set reasoning = m['reasoning_content'] if m['reasoning_content'] is defined and m['reasoning_content'] else '' -%}
{%- if '</think>' in text -%}{%- set answer = text.split('</think>')[-1] | trim -%}
{%- else -%}{%- set answer = text -%}{%- if reasoning | trim -%}
{%- set text = '<think>\\n' + reasoning | trim + '\\n</think>\\n\\n' + text | trim -%}{%- endif -%}{%- endif -%}
{%- set ns.view = ns.view + [{'role': 'assistant', 'content': text if loop.index0 > ns.last_user else answer}] -%}
{%- else -%}{%- set ns.view = ns.view + [m] -%}{%- endif -%}
{%- endfor -%}
{%- set messages = ns.view -%}
"""
# `enable_thinking` false (llama.cpp's `--reasoning off`, `chat_template_kwargs`): an empty, closed
# think block, as Qwen3's templates write it, so the student answers at once.
_PREFILL = "{{- '<think>\\n' -}}"
_THINK_OFF = ("{%- if add_generation_prompt and enable_thinking is defined and not enable_thinking -%}"
              "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}")


def inference_template(template: str) -> str:
    """The template for runtimes that only render (llama.cpp): no `{% generation %}` markers,
    earlier turns' thinking dropped, and `enable_thinking` honoured."""
    import re

    plain = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", template)
    plain = plain.replace(_PREFILL, "{%- if enable_thinking is not defined or enable_thinking -%}"
                          + _PREFILL + "{%- endif -%}")
    return _THINKING_VIEW + plain + _THINK_OFF
