"""Ollama's view of an exported student: a Go TEMPLATE that mirrors the GGUF's chat template, the
sampling `params` and a `Modelfile`. `ollama create -f Modelfile` reads the Modelfile; a hub repo
(`ollama run hf.co/ORG/REPO:Q4_K_M`) is read through its `template`, `params` (and `system`) files
instead, so the export folder holds all of them.

Thinking, as Ollama's own deepseek-r1 template does it: `{{ .Thinking }}` sits between `<think>`
and `</think>` inside the range over `.Messages`, which is how Ollama infers the tags and marks the
model as thinking-capable (so `--think=false`, `--hidethinking` and the API's `think` work).
The generation prompt prefills `<think>\\n` as the GGUF's template does (the student was trained
and evaluated that way); Ollama starts its thinking parser inside the block when the prompt ends
with the opening tag. `think=false` prefills an empty, closed block instead. Earlier assistant
turns are replayed without their thinking; no literal BOS (Ollama adds the model's own).

    write_files(Path("export/smol"), Path("export/smol/smol-Q4_K_M.gguf"), "<|im_end|>", prefill_think=True)
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.export.context import read_context
from distill.records import write_text
from distill.train.templates import STYLES

# Sampling as DeepSeek recommends for R1 and its distills.
SAMPLING = {"temperature": 0.6, "top_p": 0.95}
FILES = ("Modelfile", "template", "params", "system")


def style_of(stop: str) -> str | None:
    """The chat format whose turns end with `stop` (None: not one distill writes)."""
    return next((style for style, (_, end) in STYLES.items() if end == stop), None)


def stops(style: str) -> list[str]:
    """The turn end, and the next turn's header in case a student runs past its end."""
    start, end = STYLES[style]
    return [end, start.split("{role}")[0]]


def go_template(style: str, prefill_think: bool = True) -> str:
    """The Ollama TEMPLATE (Go text/template) rendering exactly what the GGUF's Jinja template
    renders (less the BOS token), for system, user and assistant turns."""
    start, end = STYLES[style]
    sep = "\n" if style == "chatml" else ""

    def turn(role: str) -> str:
        return start.replace("{role}", role)

    return (
        "{{- if .System }}" + turn("system") + "{{ .System }}" + end + sep + "{{ end }}\n"
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        '{{- if eq .Role "user" }}' + turn("user") + "{{ .Content }}" + end + sep
        + '{{ else if eq .Role "assistant" }}' + turn("assistant")
        # Only a turn being continued keeps its thinking; earlier turns replay the answer alone.
        + "{{ if and $last .Thinking }}<think>\n{{ .Thinking }}\n</think>\n\n{{ end }}"
        "{{ .Content }}{{ if not $last }}" + end + sep + "{{ end }}\n"
        "{{- end }}\n"
        '{{- if and $last (ne .Role "assistant") }}' + turn("assistant")
        + "{{ if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n{{ else }}"
        + ("<think>\n" if prefill_think else "") + "{{ end }}\n"
        "{{- end }}\n"
        "{{- end }}"
    )


def params(style: str | None, num_ctx: int) -> dict:
    """Ollama's `params`: stop tokens, R1 sampling and a context long enough to think in."""
    return {**({"stop": stops(style)} if style else {}), **SAMPLING, "num_ctx": num_ctx}


def modelfile(gguf_name: str, style: str | None, prefill_think: bool, num_ctx: int,
              system: str | None = None) -> str:
    lines = [f"FROM ./{gguf_name}"]
    if style:
        # Ollama renders its own Go template, not the GGUF's Jinja one.
        lines.append(f'TEMPLATE """{go_template(style, prefill_think)}"""')
    if system:
        lines.append(f'SYSTEM """{system}"""')
    for key, value in params(style, num_ctx).items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f'PARAMETER {key} "{v}"' if isinstance(v, str) else f"PARAMETER {key} {v}")
    return "\n".join(lines) + "\n"


def write_files(folder: Path, gguf: Path, stop: str, prefill_think: bool = True,
                system: str | None = None) -> list[str]:
    """`Modelfile`, `template`, `params` (and `system`) for `gguf` into `folder`; their names.
    A stop token of no format distill writes gets no template: Ollama then converts the GGUF's."""
    folder, style = Path(folder), style_of(stop)
    num_ctx = read_context(gguf).thinking_ctx
    write_text(folder / "Modelfile", modelfile(Path(gguf).name, style, prefill_think, num_ctx, system))
    write_text(folder / "params", json.dumps(params(style, num_ctx), indent=2) + "\n")
    written = ["Modelfile", "params"]
    if style:
        write_text(folder / "template", go_template(style, prefill_think))
        written.append("template")
    if system:
        write_text(folder / "system", system)
        written.append("system")
    return written
