"""Evaluation backends behind one small interface: an HF folder (batched transformers generation),
a GGUF file (llama.cpp in process) or an OpenAI-compatible endpoint (a URL, or a server that
`distill.evaluate.served` starts for the model under test).

A backend renders a conversation to the model's prompt text (`render`) and continues raw prompt
texts (`complete`), which is all budget forcing needs; `generate` answers whole conversations.
Prompts are tokenized once and passed on as ids (`prompts`: a single BOS, the template's own
special tokens). Generation stops at the tokenizer's EOS and at `stop_token`, the chat template's
turn end: a base model whose EOS is `<|end_of_text|>` evaluated with a template that ends turns
with `<|eot_id|>` stops there, instead of inventing the next turn.

    with GGUFBackend("export/smol/smol-Q8_0.gguf", cfg) as backend:   # or registry.open_backend(model, cfg)
        outs = backend.generate(conversations, max_tokens=256)   # [Completion(text, tokens, finish_reason)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distill.r1 import THINK_OPEN
from distill.recipe import EvalCfg

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass
class Completion:
    text: str
    tokens: int  # new tokens the model produced (the stop token not counted)
    finish_reason: str = "stop"  # "stop" (EOS, turn end or a stop string) or "length" (max_tokens)
    prompt_tokens: int | None = None  # as the runtime counted them: one BOS, not two


def prefill_of(prompt: str) -> str:
    """The part of the assistant turn the template already wrote (e.g. "<think>\\n")."""
    return THINK_OPEN + "\n" if prompt.endswith(THINK_OPEN + "\n") else ""


def _cut(text: str, stop: list[str] | None) -> tuple[str, bool]:
    hit = False
    for s in stop or []:
        if s in text:
            text, hit = text[: text.index(s)], True
    return text, hit


class Backend:
    """Base: `generate` = render each conversation, continue it, keep the template's prefill."""

    name = "backend"
    prompts = None  # HFPrompts / GGUFPrompts once entered (None: the endpoint renders)

    def __init__(self, model: str, cfg: EvalCfg, chat_template: str | None = None, progress=None,
                 stop_token: str | None = None):
        self.model, self.cfg, self.chat_template, self.progress = model, cfg, chat_template, progress
        self.stop_token = stop_token

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def render(self, conversation: list[dict]) -> str:
        return self.prompts.render(conversation)

    def count_tokens(self, text: str) -> int:
        return self.prompts.count(text)

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        raise NotImplementedError

    def generate(self, conversations: list[list[dict]], max_tokens: int) -> list[Completion]:
        prompts = [self.render(c) for c in conversations]
        outs = self.complete(prompts, max_tokens)
        return [Completion(prefill_of(p) + o.text, o.tokens, o.finish_reason, o.prompt_tokens)
                for p, o in zip(prompts, outs)]

    def stops(self, extra: list[str] | None = None) -> list[str]:
        return [*([self.stop_token] if self.stop_token else []), *(extra or [])]

    def _task(self, what: str, total: int):
        return self.progress.add_task(f"{what} {Path(self.model).name}", total=total) if self.progress else None

    def _advance(self, task, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(task, n)


class HFBackend(Backend):
    """Left-padded batched `model.generate` in fp32 (CPU) or the model's dtype on GPU."""

    name = "hf"

    def __enter__(self) -> Self:
        import torch
        from transformers import AutoModelForCausalLM

        from distill.assets import hf_folder
        from distill.evaluate.prompts import HFPrompts

        ref = hf_folder(self.model)
        self.prompts = HFPrompts.load(ref, self.chat_template)
        self.tok = self.prompts.tok
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.lm = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype).to(device).eval()
        eos = self.lm.generation_config.eos_token_id
        ids = {self.tok.eos_token_id, *(eos if isinstance(eos, list) else [eos])}
        if self.stop_token:
            ids.add(self.prompts.token_id(self.stop_token))
        self.stop_ids = sorted(i for i in ids if i is not None)
        torch.manual_seed(self.cfg.seed)
        return self

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        import torch

        cfg, tok, out = self.cfg, self.tok, []
        sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p} if cfg.temperature > 0 \
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if stop:  # transformers stops a row at a stop string; the tokenizer lets it match across tokens
            sampling |= {"stop_strings": stop, "tokenizer": tok}
        task = self._task("eval", len(prompts))
        for i in range(0, len(prompts), cfg.batch_size):
            ids = [self.prompts.encode(p) for p in prompts[i:i + cfg.batch_size]]
            enc = tok.pad({"input_ids": ids}, return_tensors="pt", padding=True).to(self.lm.device)
            with torch.inference_mode():
                gen = self.lm.generate(**enc, max_new_tokens=max_tokens, pad_token_id=tok.pad_token_id,
                                       eos_token_id=self.stop_ids, **sampling)
            for row, prompt_ids in zip(gen[:, enc["input_ids"].shape[1]:].tolist(), ids):
                out.append(self._completion(row, max_tokens, stop, len(prompt_ids)))
            self._advance(task, len(ids))
        return out

    def _completion(self, row: list[int], max_tokens: int, stop: list[str] | None, n_prompt: int) -> Completion:
        at = next((k for k, t in enumerate(row) if t in self.stop_ids), None)
        if at is not None:  # EOS or the turn end: what follows is padding
            return Completion(self.tok.decode(row[:at], skip_special_tokens=True), at, "stop", n_prompt)
        text, hit = _cut(self.tok.decode(row, skip_special_tokens=True), stop)
        if hit:  # a stop string ended the row; the rest is padding
            while row and row[-1] == self.tok.pad_token_id:
                row = row[:-1]
        return Completion(text, len(row), "stop" if hit or len(row) < max_tokens else "length", n_prompt)


class GGUFBackend(Backend):
    """llama.cpp in process, one request at a time, seeded per request."""

    name = "gguf"

    def __enter__(self) -> Self:
        from distill.evaluate.prompts import GGUFPrompts
        from distill.llamacpp import load_gguf

        self.llm = load_gguf(self.model, n_ctx=context_length(self.cfg))
        self.prompts = GGUFPrompts(self.llm, self.chat_template)
        self._seed = self.cfg.seed
        return self

    def __exit__(self, *exc) -> None:
        self.llm.close()

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        out = []
        task = self._task("eval", len(prompts))
        for prompt in prompts:
            res = self.llm.create_completion(self.prompts.encode(prompt), max_tokens=max_tokens,
                                             temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                             seed=self._seed, stop=self.stops(stop) or None)
            self._seed += 1
            choice, usage = res["choices"][0], res["usage"]
            out.append(Completion(choice["text"], usage["completion_tokens"], choice["finish_reason"] or "stop",
                                  usage["prompt_tokens"]))
            self._advance(task)
        return out


def context_length(cfg: EvalCfg) -> int:
    """Tokens per sequence: the recipe's `eval.n_ctx`, else room for a prompt and the longest generation."""
    longest = max(cfg.max_tokens, max(cfg.think_budgets, default=0) + cfg.answer_tokens)
    return cfg.n_ctx or max(2048, 1024 + longest)
