"""Teachers behind one interface, chosen by `teacher.backend` in the recipe (one line each below).

Backends import their heavy libraries (aiohttp, llama_cpp, transformers, datasets) lazily.

    with open_teacher(recipe.teacher, run_dir) as teacher: ...
"""

from __future__ import annotations

from pathlib import Path

from distill.recipe import TeacherCfg
from distill.sample.teacher.base import Generation, Teacher, TeacherError


def _openai(cfg: TeacherCfg, run_dir: Path) -> Teacher:
    from distill.sample.teacher.openai import OpenAITeacher

    return OpenAITeacher(cfg.model, cfg.base_urls, cfg.api_key_env)


def _llamacpp(cfg: TeacherCfg, run_dir: Path) -> Teacher:
    from distill.sample.teacher.llamacpp import InProcessLlamaTeacher, LlamaCppTeacher

    if cfg.in_process:
        return InProcessLlamaTeacher(cfg.model, cfg.n_ctx, cfg.n_threads)
    return LlamaCppTeacher(cfg.model, cfg.n_ctx, cfg.n_threads, log_path=Path(run_dir) / "teacher-server.log",
                           requantize=cfg.requantize, server_args=cfg.server_args)


def _hf(cfg: TeacherCfg, run_dir: Path) -> Teacher:
    from distill.sample.teacher.hf import HFTeacher

    return HFTeacher(cfg.model, cfg.batch_size, cfg.n_threads)


def _dataset(cfg: TeacherCfg, run_dir: Path) -> Teacher:
    from distill.sample.teacher.dataset import DatasetTeacher

    return DatasetTeacher(cfg.model, cfg.dataset_layout, cfg.dataset_split, cfg.dataset_config, cfg.dataset_limit)


BACKENDS = {"openai": _openai, "llamacpp": _llamacpp, "hf": _hf, "dataset": _dataset}


def open_teacher(cfg: TeacherCfg, run_dir: str | Path) -> Teacher:
    return BACKENDS[cfg.backend](cfg, Path(run_dir))


__all__ = ["BACKENDS", "Generation", "Teacher", "TeacherError", "open_teacher"]
