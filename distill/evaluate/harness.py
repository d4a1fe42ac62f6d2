"""Evaluation with the filter's verifier: pass@1 over n samples with its standard error, unbiased
pass@k, truncation rate and mean thinking tokens (`stats`), and the inference-time scaling curve
(accuracy and thinking tokens at a list of thinking budgets).

Backends (HF folder, GGUF, OpenAI-compatible endpoint, a server started for the model) are chosen
in `distill.evaluate.registry`.

    result = run("data/runs/smol/student", problems, recipe.eval, out=Path("eval/student.jsonl"))
    curve = budget_curve("data/runs/smol/student", problems, recipe.eval, [16, 32, 64])
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.progress import Progress

from distill.evaluate.backends import Backend
from distill.evaluate.registry import open_backend
from distill.evaluate.stats import pass_at_k, summarise
from distill.filter.verify import is_correct
from distill.r1 import THINK_CLOSE, THINK_OPEN, split_r1
from distill.recipe import EvalCfg
from distill.records import Problem, write_json, write_jsonl
from distill.sample.prompts import student_messages

FORCE_CLOSE = f"\n{THINK_CLOSE}\n\n"
__all__ = ["run", "budget_curve", "pass_at_k", "summarise"]


def thinking_tokens(backend: Backend, text: str, tokens: int) -> int | None:
    """Tokens spent inside the think block: all of them when it never closed (cut while thinking)."""
    if backend.prompts is None:
        return None
    reasoning = split_r1(text).reasoning
    return tokens if reasoning is None else min(backend.count_tokens(reasoning), tokens)


def _row(p: Problem, k: int, text: str, tokens: int, finish_reason: str = "stop", **extra) -> dict:
    return {"problem_id": p.id, "sample_index": k, "correct": is_correct(text, p.domain, p.answer, p.choices),
            "closed_think": split_r1(text).reasoning is not None, "completion_tokens": tokens,
            "finish_reason": finish_reason, **extra, "completion": text}


def _with(model, cfg: EvalCfg, chat_template: str | None, show_progress: bool, endpoint: dict, work):
    """Run `work(backend)` with `model` (a path/URL, opened here, or an already open Backend).
    `endpoint`: stop_token, served, and for URLs served_model, api_key_env, tokenizer."""
    if isinstance(model, Backend):
        return work(model)
    with Progress(disable=not show_progress) as progress, \
            open_backend(model, cfg, chat_template, progress, **endpoint) as backend:
        return work(backend)


def run(model: str | Backend, problems: list[Problem], cfg: EvalCfg, out: Path | None = None,
        label: str | None = None, chat_template: str | None = None, show_progress: bool = True,
        rows_out: list | None = None, **endpoint) -> dict:
    """pass@1 of `model` over `problems`, `cfg.n` samples each; per-sample rows go to `out` (JSONL) and
    the summary beside it (`.summary.json`), and into `rows_out` where given."""
    conversations = [student_messages(p) for p in problems for _ in range(cfg.n)]

    def work(backend: Backend) -> tuple[list, float]:
        start = time.monotonic()
        gens = backend.generate(conversations, cfg.max_tokens)
        wall = time.monotonic() - start
        return [_row(problems[k // cfg.n], k % cfg.n, g.text, g.tokens, g.finish_reason,
                     thinking_tokens=thinking_tokens(backend, g.text, g.tokens), prompt_tokens=g.prompt_tokens)
                for k, g in enumerate(gens)], wall

    rows, wall = _with(model, cfg, chat_template, show_progress, endpoint, work)
    tokens = sum(r["completion_tokens"] for r in rows)
    result = {"model": label or str(getattr(model, "model", model)),
              **summarise(rows, [p.id for p in problems], cfg.n, cfg.pass_k),
              "tokens_per_s": round(tokens / wall, 1) if wall else None, "wall_s": round(wall, 1),
              "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    if out:
        write_jsonl(out, rows)
        write_json(Path(out).with_suffix(".summary.json"), result)
    if rows_out is not None:
        rows_out.extend(rows)
    return result


def forced_generations(backend: Backend, conversations: list[list[dict]], budget: int, answer_tokens: int
                       ) -> list[dict]:
    """Budget forcing (s1): think for at most `budget` tokens (stopping early at </think>), then close the
    block and let the model answer in up to `answer_tokens`."""
    prompts = []
    for conv in conversations:
        prompt = backend.render(conv)
        if not prompt.endswith(THINK_OPEN + "\n"):  # templates without the prefill: open the block here
            prompt += THINK_OPEN + "\n"
        prompts.append(prompt)
    thoughts = backend.complete(prompts, budget, stop=[THINK_CLOSE])
    # A model that closed its thinking itself gets back exactly the "</think>" it wrote and goes on as it
    # would have; one cut at the budget gets "\n</think>\n\n".
    closings = [FORCE_CLOSE if t.finish_reason == "length" else THINK_CLOSE for t in thoughts]
    answers = backend.complete([p + t.text + c for p, t, c in zip(prompts, thoughts, closings)], answer_tokens)
    out = []
    for t, c, a in zip(thoughts, closings, answers):
        forced = t.finish_reason == "length"
        # Cut at the budget: exactly `budget` tokens; stopped early: the thinking text re-tokenized (the
        # count the backend gives then includes the "</think>" it stopped on).
        n_think = budget if forced else min(backend.count_tokens(t.text), budget)
        out.append({"text": THINK_OPEN + "\n" + t.text + c + a.text, "tokens": t.tokens + a.tokens,
                    "thinking_tokens": n_think, "forced": forced, "finish_reason": a.finish_reason})
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
            rows = [_row(problems[k // cfg.n], k % cfg.n, g["text"], g["tokens"], g["finish_reason"],
                         thinking_tokens=g["thinking_tokens"], forced=g["forced"]) for k, g in enumerate(gens)]
            point = {"budget": budget, **summarise(rows, [p.id for p in problems], cfg.n, cfg.pass_k),
                     "forced_rate": round(sum(g["forced"] for g in gens) / max(len(gens), 1), 4)}
            points.append(point)
            if out_dir:
                write_jsonl(Path(out_dir) / f"budget-{budget}.jsonl", rows)
        return points

    points = _with(model, cfg, chat_template, show_progress, endpoint, work)
    curve = {"model": label or str(getattr(model, "model", model)), "answer_tokens": cfg.answer_tokens,
             "problems": len(problems), "points": points}
    if out_dir:
        write_json(Path(out_dir) / "budgets.json", curve)
    return curve
