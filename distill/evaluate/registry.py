"""Which backend evaluates a model: a URL is an endpoint; `served` starts a server for the model
(vLLM on GPU, llama.cpp's server on CPU and for GGUF files); otherwise a `.gguf` file runs in
llama.cpp in process and anything else (HF folder, hub name, `embedded:NAME`) in transformers.
Adding a backend is one class in its own file and one line here.

    with open_backend("data/runs/smol/student", cfg, stop_token="<|im_end|>") as backend:
        outs = backend.generate(conversations, cfg.max_tokens)
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.evaluate.backends import Backend, GGUFBackend, HFBackend
from distill.evaluate.endpoint import EndpointBackend
from distill.recipe import EvalCfg


def is_endpoint(model: str) -> bool:
    return str(model).startswith(("http://", "https://", "${"))


def open_backend(model: str, cfg: EvalCfg, chat_template: str | None = None, progress=None,
                 stop_token: str | None = None, served: bool | None = None, **endpoint) -> Backend:
    """The backend for `model`; `served` defaults to the recipe's `eval.served`. `endpoint`
    (URLs only): served_model, api_key_env, tokenizer."""
    model = str(model)
    if is_endpoint(model):
        return EndpointBackend(model, cfg, chat_template, progress, stop_token, **endpoint)
    if model.endswith(".gguf") and not Path(model).exists():
        raise DistillError(f"{model} not found")
    if cfg.served if served is None else served:
        from distill.evaluate.served import ServedBackend

        return ServedBackend(model, cfg, chat_template, progress, stop_token)
    if model.endswith(".gguf"):
        return GGUFBackend(model, cfg, chat_template, progress, stop_token)
    return HFBackend(model, cfg, chat_template, progress, stop_token)
