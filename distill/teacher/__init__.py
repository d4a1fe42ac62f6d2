"""Teachers behind one interface, chosen by `teacher.backend` in the recipe."""

from __future__ import annotations

from pathlib import Path

from distill.recipe import TeacherCfg
from distill.teacher.base import Generation, Teacher, TeacherError
from distill.teacher.llamacpp import LlamaCppTeacher
from distill.teacher.openai import OpenAITeacher

BACKENDS = {
    "openai": lambda cfg, run_dir: OpenAITeacher(cfg.model, cfg.base_urls, cfg.api_key_env),
    "llamacpp": lambda cfg, run_dir: LlamaCppTeacher(
        cfg.model, cfg.n_ctx, cfg.n_threads, log_path=Path(run_dir) / "teacher-server.log"
    ),
}


def open_teacher(cfg: TeacherCfg, run_dir: str | Path) -> Teacher:
    return BACKENDS[cfg.backend](cfg, run_dir)


__all__ = ["BACKENDS", "Generation", "Teacher", "TeacherError", "open_teacher"]
