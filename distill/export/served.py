"""An HF model folder served by llama.cpp on CPU: converted once to GGUF F16 (llama.cpp's converter,
the chat template embedded), started on llama-server with parallel slots, and an eval backend on it.
The pipeline evaluates students and the base this way, and STaR rounds sample the student through the
same server: hundreds of problems at once instead of one sequence at a time.

    with served(Path("data/runs/smol/student"), Path("data/runs/smol/eval/student.gguf"), recipe.eval,
                parallel=16) as (server, backend):
        result = harness.run(backend, problems, recipe.eval)
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from distill.errors import DistillError
from distill.evaluate.endpoint import EndpointBackend
from distill.hf_to_gguf import chat_template_of, convert
from distill.llamacpp import LlamaServer
from distill.recipe import EvalCfg
from distill.records import write_json
from distill.train.templates import inference_template


def gguf_of(model_dir: Path, gguf: Path, chat_template: str | None = None) -> Path:
    """`gguf` (F16) made from `model_dir` unless it was already made from the same files and template."""
    model_dir, gguf = Path(model_dir), Path(gguf)
    stamp = {"model_dir": str(model_dir.resolve()), "template": chat_template,
             "files": sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in model_dir.iterdir() if f.is_file())}
    stamp_path = gguf.with_suffix(".source.json")
    if gguf.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
        return gguf
    gguf.parent.mkdir(parents=True, exist_ok=True)
    # The converter embeds the template asked for (else the folder's own), without training-only markers.
    template = chat_template or chat_template_of(model_dir)
    convert(model_dir, gguf, {"general.name": gguf.stem}, chat_template=inference_template(template) if template else None)
    write_json(stamp_path, stamp)
    return gguf


def context_for(cfg: EvalCfg, *max_tokens: int, prompt: int = 256) -> int:
    """Tokens per slot: room for a zero-shot prompt and the longest generation asked of the server."""
    return prompt + max(cfg.max_tokens, max(cfg.think_budgets, default=0) + cfg.answer_tokens, *max_tokens)


@contextmanager
def served(model_dir: Path, gguf: Path, cfg: EvalCfg, parallel: int, chat_template: str | None = None,
           ctx: int | None = None, threads: int | None = None, alias: str | None = None):
    """Yield (LlamaServer, EndpointBackend) for the HF folder `model_dir` (converted to `gguf` first)."""
    if not (Path(model_dir) / "config.json").exists():
        raise DistillError(f"{model_dir} is not an HF model folder (no config.json); run `distill train` first")
    gguf = gguf_of(Path(model_dir), Path(gguf), chat_template)
    alias = alias or gguf.stem
    with LlamaServer(gguf, alias=alias, parallel=parallel, ctx=ctx or context_for(cfg), threads=threads,
                     log_path=gguf.with_suffix(".log"),
                     extra_args=["--reasoning-format", "none", "--cache-ram", "0"]) as server:
        with EndpointBackend(server.url, cfg, chat_template, served_model=alias, tokenizer=str(model_dir)) as backend:
            yield server, backend
