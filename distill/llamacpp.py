"""llama.cpp, shared by the stages that run GGUF files (teacher, eval, export, laptop): loading a GGUF
in process (llama-cpp-python), rendering its chat template, and the quant names llama.cpp knows."""

from __future__ import annotations

import os
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
