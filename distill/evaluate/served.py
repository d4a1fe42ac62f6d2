"""Served evaluation: start an OpenAI-compatible server for the model under test, wait for its
health check, evaluate through the endpoint backend at high concurrency, stop it.

vLLM on GPU (an HF folder or hub name; data-parallel over the visible GPUs, `--max-model-len` from
`eval.n_ctx`), llama.cpp's `llama-server` on CPU and for GGUF files (`eval.batch_size` parallel
slots with continuous batching; layers on the GPU where llama.cpp was built with CUDA). An HF
folder served by llama.cpp is converted to a GGUF F16 once (cached by its files). Prompts are
rendered and tokenized here, with the tokenizer the in-process backends use, and posted as ids.

    with ServedBackend("data/runs/8b/student", recipe.eval, stop_token="<|eot_id|>") as backend:
        outs = backend.generate(conversations, max_tokens=32768)
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from distill.errors import DistillError
from distill.evaluate.backends import context_length
from distill.evaluate.endpoint import EndpointBackend
from distill.llamacpp import LlamaServer, llama_cpp_has_gpu, served_copy

if TYPE_CHECKING:
    from typing_extensions import Self


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def engine_for(model: str, engine: str = "auto") -> str:
    """`vllm` or `llamacpp`: GGUF files always go to llama.cpp; `auto` takes vLLM where it is installed
    and a GPU is visible."""
    if str(model).endswith(".gguf"):
        if engine == "vllm":
            raise DistillError(f"{model} is a GGUF file: serve it with `eval.engine: llamacpp` (or auto)")
        return "llamacpp"
    has_vllm = importlib.util.find_spec("vllm") is not None
    if engine == "vllm" and not has_vllm:
        raise DistillError("`eval.engine: vllm` needs vLLM: pip install vllm (GPU machines), or set "
                           "`eval.engine: llamacpp`")
    if engine == "auto":
        return "vllm" if has_vllm and visible_gpus() else "llamacpp"
    return engine


def gpu_layers(setting: int | str | None) -> int | None:
    """`eval.gpu_layers` / `export.gpu_layers`: `auto` puts every layer on the GPU when llama.cpp has one."""
    if setting == "auto":
        return 999 if llama_cpp_has_gpu() else None
    return setting


class VLLMServer(LlamaServer):
    """`vllm serve` on 127.0.0.1 with the same start, health wait and parent-death handling as
    llama-server: one engine replica per visible GPU (`--data-parallel-size`)."""

    program = "vllm"

    def __init__(self, model: str, alias: str, max_model_len: int, data_parallel: int = 1, seed: int = 0,
                 max_num_seqs: int = 256, extra_args: list[str] | None = None, log_path: Path | None = None,
                 start_timeout_s: float = 1800):
        self.gguf = Path(model)  # what the base class names in its errors
        self.model, self.alias = model, alias
        self.max_model_len, self.data_parallel, self.seed = max_model_len, max(1, data_parallel), seed
        self.max_num_seqs = max_num_seqs
        self.extra_args, self.log_path, self.start_timeout_s = list(extra_args or []), log_path, start_timeout_s
        from distill.llamacpp import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        self.proc = None

    def command(self) -> list[str]:
        # `--generation-config vllm`: sample with the request's settings only, not the defaults a model's
        # generation_config.json carries (as the papers' harnesses do).
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
                "--served-model-name", self.alias, "--host", "127.0.0.1", "--port", str(self.port),
                "--max-model-len", str(self.max_model_len), "--data-parallel-size", str(self.data_parallel),
                "--max-num-seqs", str(self.max_num_seqs), "--seed", str(self.seed),
                "--generation-config", "vllm", *self.extra_args]


def served_gguf(model_dir: str | Path, chat_template: str | None = None) -> Path:
    """An HF folder as a GGUF F16 for llama-server, converted once and cached (`served_copy`: reused while
    the folder's files and the template are unchanged)."""
    from distill.assets import hf_folder
    from distill.hf_to_gguf import chat_template_of, convert
    from distill.train.templates import inference_template

    folder = Path(hf_folder(str(model_dir)))
    if not (folder / "config.json").exists():
        raise DistillError(f"{model_dir} is not a local HF folder; llama.cpp serves local models only "
                           "(on a GPU machine with vLLM, set `eval.engine: vllm`)")
    template = chat_template or chat_template_of(folder)
    template = inference_template(template) if template else None
    return served_copy(folder, "F16", lambda out: convert(folder, out, {"general.name": folder.name},
                                                           chat_template=template), variant=template)


class ServedBackend(EndpointBackend):
    """The endpoint backend over a server started here for `model` (see the module docstring)."""

    name = "served"
    send_ids = True

    def __init__(self, model: str, cfg, chat_template: str | None = None, progress=None,
                 stop_token: str | None = None):
        super().__init__(model, cfg, chat_template, progress, stop_token)
        self.server = None

    def __enter__(self) -> Self:
        from distill.evaluate.prompts import GGUFPrompts, HFPrompts

        cfg, model = self.cfg, str(self.model)
        engine = engine_for(model, cfg.engine)
        alias = Path(model).name.removesuffix(".gguf") or "model"
        log = Path(tempfile.gettempdir()) / f"distill-{engine}-{alias}-{os.getpid()}.log"
        if engine == "vllm":
            from distill.assets import hf_folder

            ref = hf_folder(model)
            self.prompts = HFPrompts.load(ref, self.chat_template)
            self.server = VLLMServer(ref, alias, context_length(cfg), cfg.data_parallel or visible_gpus(),
                                     cfg.seed, max_num_seqs=cfg.batch_size, extra_args=cfg.vllm_args, log_path=log)
        else:
            if model.endswith(".gguf"):
                gguf, self.prompts = Path(model), GGUFPrompts.load(model, self.chat_template)
            else:  # the HF tokenizer renders and encodes, exactly as the in-process HF backend does
                gguf, self.prompts = served_gguf(model, self.chat_template), HFPrompts.load(model, self.chat_template)
            # --reasoning-format none: a chat answer comes back as the model wrote it (STaR rounds sample
            # through the chat API and parse the R1 form themselves); --cache-ram 0: no host-memory copy of
            # every finished prompt (eval prompts are all different).
            self.server = LlamaServer(gguf, alias, parallel=cfg.batch_size, ctx=context_length(cfg),
                                      log_path=log, gpu_layers=gpu_layers(cfg.gpu_layers),
                                      extra_args=["--reasoning-format", "none", "--cache-ram", "0"])
        self.server.__enter__()
        self.url, self.served_model = self.server.url, self.server.alias
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.__exit__(*exc)
        llm = getattr(self.prompts, "llm", None)
        if llm is not None:
            llm.close()
