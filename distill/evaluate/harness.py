"""Evaluation with the filter's verifier: pass@1 averaged over n samples, unbiased pass@k, and the
inference-time scaling curve (accuracy and thinking tokens at a list of thinking budgets).

Backends (HF folder, GGUF, OpenAI-compatible endpoint) live in `distill.evaluate.backends`.

    result = run("data/runs/smol/student", problems, recipe.eval, out=Path("eval/student.jsonl"))
    curve = budget_curve("data/runs/smol/student", problems, recipe.eval, [16, 32, 64])
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from distill.evaluate.backends import Backend, open_backend
from distill.filter.verify import is_correct
from distill.r1 import THINK_CLOSE, THINK_OPEN, split_r1
from distill.recipe import EvalCfg
from distill.records import Problem, write_json, write_jsonl
from distill.sample.prompts import student_messages

FORCE_CLOSE = f"\n{THINK_CLOSE}\n\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k),
    computed as a running product so large n does not overflow."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def summarise(rows: list[dict], problems: list[Problem], cfg: EvalCfg) -> dict:
    """pass@1 (and each pass@k of `cfg.pass_k`) averaged over problems, plus form and length figures."""
    by_problem: dict[str, list[bool]] = {p.id: [] for p in problems}
    for r in rows:
        by_problem[r["problem_id"]].append(r["correct"])
    scored = [v for v in by_problem.values() if v]
    out = {"problems": len(problems), "n": cfg.n}
    for k in sorted({1, *cfg.pass_k}):
        values = [pass_at_k(len(v), sum(v), k) for v in scored if len(v) >= k]
        out[f"pass@{k}"] = round(float(np.mean(values)), 4) if values else 0.0
    count = max(len(rows), 1)
    out["closed_think_rate"] = round(sum(r["closed_think"] for r in rows) / count, 4)
    out["mean_completion_tokens"] = round(sum(r["completion_tokens"] for r in rows) / count, 1)
    if rows and "thinking_tokens" in rows[0]:
        out["mean_thinking_tokens"] = round(sum(r["thinking_tokens"] for r in rows) / count, 1)
    return out


def _row(p: Problem, k: int, text: str, tokens: int, **extra) -> dict:
    return {"problem_id": p.id, "sample_index": k, "correct": is_correct(text, p.domain, p.answer, p.choices),
            "closed_think": split_r1(text).reasoning is not None, "completion_tokens": tokens,
            **extra, "completion": text}


def _with(model, cfg: EvalCfg, chat_template: str | None, show_progress: bool, endpoint: dict, work):
    """Run `work(backend)` with `model` (a path/URL, opened here, or an already open Backend)."""
    if isinstance(model, Backend):
        return work(model)
    with Progress(disable=not show_progress) as progress, \
            open_backend(model, cfg, chat_template, progress, **endpoint) as backend:
        return work(backend)


def run(model: str | Backend, problems: list[Problem], cfg: EvalCfg, out: Path | None = None,
        label: str | None = None, chat_template: str | None = None, show_progress: bool = True,
        **endpoint) -> dict:
    """pass@1 of `model` over `problems`, `cfg.n` samples each; per-sample rows go to `out` (JSONL) and
    the summary beside it (`.summary.json`). `endpoint`: served_model, api_key_env, tokenizer."""
    conversations = [student_messages(p) for p in problems for _ in range(cfg.n)]

    def work(backend: Backend) -> tuple[list, float]:
        start = time.monotonic()
        gens = backend.generate(conversations, cfg.max_tokens)
        return gens, time.monotonic() - start

    generations, wall = _with(model, cfg, chat_template, show_progress, endpoint, work)
    rows = [_row(problems[k // cfg.n], k % cfg.n, g.text, g.tokens) for k, g in enumerate(generations)]
    tokens = sum(r["completion_tokens"] for r in rows)
    result = {"model": label or str(getattr(model, "model", model)), **summarise(rows, problems, cfg),
              "tokens_per_s": round(tokens / wall, 1) if wall else None, "wall_s": round(wall, 1),
              "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    if out:
        write_jsonl(out, rows)
        write_json(Path(out).with_suffix(".summary.json"), result)
    return result


def forced_generations(backend: Backend, conversations: list[list[dict]], budget: int, answer_tokens: int
                       ) -> list[dict]:
    """Budget forcing (s1): think for at most `budget` tokens (stopping early at </think>), then append
    "\\n</think>\\n\\n" and let the model answer in up to `answer_tokens`."""
    prompts = []
    for conv in conversations:
        prompt = backend.render(conv)
        if not prompt.endswith(THINK_OPEN + "\n"):  # templates without the prefill: open the block here
            prompt += THINK_OPEN + "\n"
        prompts.append(prompt)
    thoughts = backend.complete(prompts, budget, stop=[THINK_CLOSE])
    answers = backend.complete([p + t.text + FORCE_CLOSE for p, t in zip(prompts, thoughts)], answer_tokens)
    out = []
    for t, a in zip(thoughts, answers):
        forced = t.tokens >= budget
        # Cut at the budget: exactly `budget` tokens; stopped early: the thinking text re-tokenized (the
        # count the backend gives then includes the "</think>" it stopped on).
        n_think = budget if forced else min(backend.count_tokens(t.text), budget)
        out.append({"text": THINK_OPEN + "\n" + t.text + FORCE_CLOSE + a.text, "tokens": t.tokens + a.tokens,
                    "thinking_tokens": n_think, "forced": forced})
    return out


def budget_curve(model: str | Backend, problems: list[Problem], cfg: EvalCfg, budgets: list[int],
                 out_dir: Path | None = None, label: str | None = None, chat_template: str | None = None,
                 show_progress: bool = True, **endpoint) -> dict:
    """pass@1 and mean thinking tokens at each thinking budget: the accuracy-vs-budget curve."""
    conversations = [student_messages(p) for p in problems for _ in range(cfg.n)]

    def work(backend: Backend) -> list[dict]:
        points = []
        for budget in budgets:
            gens = forced_generations(backend, conversations, budget, cfg.answer_tokens)
            rows = [_row(problems[k // cfg.n], k % cfg.n, g["text"], g["tokens"],
                         thinking_tokens=g["thinking_tokens"], forced=g["forced"]) for k, g in enumerate(gens)]
            point = {"budget": budget, **summarise(rows, problems, cfg),
                     "forced_rate": round(sum(g["forced"] for g in gens) / max(len(gens), 1), 4)}
            points.append(point)
            if out_dir:
                write_jsonl(Path(out_dir) / f"budget-{budget}.jsonl", rows)
        return points

    points = _with(model, cfg, chat_template, show_progress, endpoint, work)
    curve = {"model": label or str(getattr(model, "model", model)), "answer_tokens": cfg.answer_tokens,
             "points": points}
    if out_dir:
        write_json(Path(out_dir) / "budgets.json", curve)
    return curve
