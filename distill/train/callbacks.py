"""Trainer callbacks: the resolved recipe in every checkpoint, and measured throughput and memory.

`Throughput` times the optimizer steps after the first few (start-up, allocator warm-up and kernel
autotuning are not training speed) and counts the non-padding tokens the Trainer saw, so
`train_summary.json` says how fast a run really went and how much memory it really took.

    trainer = SFTTrainer(..., callbacks=[SaveRecipe(recipe), Throughput()])
"""

from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback

from distill.recipe import Recipe, save_resolved


class SaveRecipe(TrainerCallback):
    """Writes the resolved recipe into every checkpoint folder, so any checkpoint says what made it."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            save_resolved(self.recipe, Path(args.output_dir) / f"checkpoint-{state.global_step}" / "recipe.yaml")


class Throughput(TrainerCallback):
    """Tokens/s over the steady steps (after `skip` steps) and the peak memory of this process."""

    def __init__(self, skip: int = 2):
        self.skip = skip
        self.marks: list[tuple[int, float, int]] = []  # (step, time, tokens seen) at each step end

    def on_train_begin(self, args, state, control, **kwargs):
        self.marks = [(state.global_step, time.perf_counter(), state.num_input_tokens_seen)]
        _reset_peak()

    def on_step_end(self, args, state, control, **kwargs):
        _sync()
        self.marks.append((state.global_step, time.perf_counter(), state.num_input_tokens_seen))

    def summary(self) -> dict:
        steps = len(self.marks) - 1
        if steps < 1:
            return {}
        first = self.marks[min(self.skip, steps - 1)] if steps > 1 else self.marks[0]
        last = self.marks[-1]
        seconds = last[1] - first[1]
        tokens = last[2] - first[2]
        return {"timed_steps": last[0] - first[0], "timed_seconds": round(seconds, 3), "timed_tokens": int(tokens),
                "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
                "tokens_seen": int(last[2]), **peak_memory()}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> dict:
    """GPU: peak allocated and reserved by PyTorch on this process's device; CPU: peak resident set."""
    import resource

    import torch

    gib = 1024**3
    if torch.cuda.is_available():
        return {"peak_memory_device": torch.cuda.get_device_name(),
                "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 2),
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 2)}
    return {"peak_memory_device": "cpu", "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                               * 1024 / gib, 2)}
