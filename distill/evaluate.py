"""Evaluation: pass@1 (averaged over n samples) with the filter's verifier, for an HF folder
(batched transformers generation), a GGUF file (llama.cpp in process) or an endpoint.

    result = run(model="data/runs/smol/student", problems=probs, cfg=recipe.eval, out=Path("eval.jsonl"))
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.progress import Progress

from distill.prompts import student_messages
from distill.recipe import EvalCfg
from distill.records import Problem, write_json, write_jsonl
from distill.verify import is_correct, split_r1


def _hf_generate(model_ref: str, conversations: list[list[dict]], cfg: EvalCfg, progress: Progress,
                 chat_template: str | None = None) -> list[tuple[str, int]]:
    """Left-padded batched generation; returns (text, new tokens) per conversation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.assets import hf_folder

    ref = hf_folder(model_ref)
    tok = AutoTokenizer.from_pretrained(ref, padding_side="left")
    if chat_template:
        tok.chat_template = chat_template
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(ref, dtype=torch.float32).eval()
    torch.manual_seed(cfg.seed)
    out: list[tuple[str, int]] = []
    task = progress.add_task(f"eval {Path(model_ref).name}", total=len(conversations))
    for i in range(0, len(conversations), cfg.batch_size):
        batch = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in conversations[i:i + cfg.batch_size]]
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p} \
            if cfg.temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=cfg.max_tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id, **sampling)
        prompt_len = enc["input_ids"].shape[1]
        prefix = _prefill(batch[0])
        for row in gen[:, prompt_len:]:
            ids = [t for t in row.tolist() if t != tok.pad_token_id]
            n_new = len(ids) - (ids[-1:] == [tok.eos_token_id])
            out.append((prefix + tok.decode(ids, skip_special_tokens=True), n_new))
        progress.advance(task, len(batch))
    return out


def _prefill(prompt: str) -> str:
    """The part of the assistant turn the template already wrote (e.g. "<think>\\n")."""
    return "<think>\n" if prompt.endswith("<think>\n") else ""


def _gguf_generate(path: str, conversations: list[list[dict]], cfg: EvalCfg, progress: Progress,
                   chat_template: str | None = None) -> list[tuple[str, int]]:
    from distill.llama import load_gguf, render_prompt

    llm = load_gguf(path)
    out = []
    task = progress.add_task(f"eval {Path(path).name}", total=len(conversations))
    for k, conv in enumerate(conversations):
        prompt = render_prompt(llm, conv, chat_template)
        res = llm.create_completion(prompt, max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                    top_p=cfg.top_p, seed=cfg.seed + k)
        out.append((_prefill(prompt) + res["choices"][0]["text"], res["usage"]["completion_tokens"]))
        progress.advance(task)
    return out


def run(model: str, problems: list[Problem], cfg: EvalCfg, out: Path | None = None, label: str | None = None,
        chat_template: str | None = None, show_progress: bool = True) -> dict:
    """pass@1 of `model` over `problems`, `cfg.n` samples each; per-sample rows go to `out`."""
    conversations = [student_messages(p.problem) for p in problems for _ in range(cfg.n)]
    backend = _gguf_generate if str(model).endswith(".gguf") else _hf_generate
    start = time.monotonic()
    with Progress(disable=not show_progress) as progress:
        generations = backend(str(model), conversations, cfg, progress, chat_template)
    wall = time.monotonic() - start
    rows, correct_by_problem = [], {}
    for k, (text, n_tokens) in enumerate(generations):
        p = problems[k // cfg.n]
        ok = is_correct(text, p.domain, p.answer, p.choices)
        correct_by_problem.setdefault(p.id, []).append(ok)
        rows.append({"problem_id": p.id, "sample_index": k % cfg.n, "correct": ok, "completion": text,
                     "completion_tokens": n_tokens, "closed_think": split_r1(text).reasoning is not None})
    pass1 = sum(sum(v) / len(v) for v in correct_by_problem.values()) / max(len(correct_by_problem), 1)
    tokens = sum(r["completion_tokens"] for r in rows)
    result = {"model": label or str(model), "problems": len(problems), "n": cfg.n, "pass@1": round(pass1, 4),
              "closed_think_rate": round(sum(r["closed_think"] for r in rows) / max(len(rows), 1), 4),
              "mean_completion_tokens": round(tokens / max(len(rows), 1), 1),
              "tokens_per_s": round(tokens / wall, 1) if wall else None, "wall_s": round(wall, 1)}
    if out:
        write_jsonl(out, rows)
        write_json(Path(out).with_suffix(".summary.json"), result)
    return result
