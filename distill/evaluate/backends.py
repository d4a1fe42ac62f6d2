"""Evaluation backends behind one small interface: an HF folder (batched transformers generation),
a GGUF file (llama.cpp in process) or an OpenAI-compatible endpoint.

A backend renders a conversation to the model's prompt text (`render`) and continues raw prompt
texts (`complete`), which is all budget forcing needs; `generate` answers whole conversations.
Adding one is a class here and a line in `open_backend`.

    with open_backend("export/smol/smol-Q8_0.gguf", cfg) as backend:
        texts = backend.generate(conversations, max_tokens=256)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distill.errors import DistillError
from distill.r1 import THINK_OPEN
from distill.recipe import EvalCfg

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass
class Completion:
    text: str
    tokens: int  # new tokens the model produced


def prefill_of(prompt: str) -> str:
    """The part of the assistant turn the template already wrote (e.g. "<think>\\n")."""
    return THINK_OPEN + "\n" if prompt.endswith(THINK_OPEN + "\n") else ""


def _cut(text: str, stop: list[str] | None) -> str:
    for s in stop or []:
        if s in text:
            text = text[: text.index(s)]
    return text


class Backend:
    """Base: `generate` = render each conversation, continue it, keep the template's prefill."""

    name = "backend"

    def __init__(self, model: str, cfg: EvalCfg, chat_template: str | None = None, progress=None):
        self.model, self.cfg, self.chat_template, self.progress = model, cfg, chat_template, progress

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def render(self, conversation: list[dict]) -> str:
        raise NotImplementedError

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError

    def generate(self, conversations: list[list[dict]], max_tokens: int) -> list[Completion]:
        prompts = [self.render(c) for c in conversations]
        outs = self.complete(prompts, max_tokens)
        return [Completion(prefill_of(p) + o.text, o.tokens) for p, o in zip(prompts, outs)]

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
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from distill.assets import hf_folder

        ref = hf_folder(self.model)
        self.tok = AutoTokenizer.from_pretrained(ref, padding_side="left")
        if self.chat_template:
            self.tok.chat_template = self.chat_template
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.lm = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype).to(device).eval()
        torch.manual_seed(self.cfg.seed)
        return self

    def render(self, conversation: list[dict]) -> str:
        return self.tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        import torch

        cfg, tok, out = self.cfg, self.tok, []
        sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p} if cfg.temperature > 0 \
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if stop:  # transformers stops a row at a stop string; the tokenizer lets it match across tokens
            sampling |= {"stop_strings": stop, "tokenizer": tok}
        task = self._task("eval", len(prompts))
        for i in range(0, len(prompts), cfg.batch_size):
            batch = prompts[i:i + cfg.batch_size]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(self.lm.device)
            with torch.inference_mode():
                gen = self.lm.generate(**enc, max_new_tokens=max_tokens, pad_token_id=tok.pad_token_id,
                                       eos_token_id=tok.eos_token_id, **sampling)
            for row in gen[:, enc["input_ids"].shape[1]:].tolist():
                ids = [t for t in row if t != tok.pad_token_id]
                n_new = len(ids) - (ids[-1:] == [tok.eos_token_id])
                out.append(Completion(_cut(tok.decode(ids, skip_special_tokens=True), stop), n_new))
            self._advance(task, len(batch))
        return out


class GGUFBackend(Backend):
    """llama.cpp in process, one request at a time, seeded per request."""

    name = "gguf"

    def __enter__(self) -> Self:
        from distill.llamacpp import load_gguf

        cfg = self.cfg
        n_ctx = cfg.n_ctx or max(2048, 1024 + max(cfg.max_tokens, max(cfg.think_budgets, default=0) + cfg.answer_tokens))
        self.llm = load_gguf(self.model, n_ctx=n_ctx)
        self._seed = self.cfg.seed
        return self

    def render(self, conversation: list[dict]) -> str:
        from distill.llamacpp import render_prompt
        from distill.train.templates import inference_template

        template = inference_template(self.chat_template) if self.chat_template else None
        return render_prompt(self.llm, conversation, template)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=False))

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        out = []
        task = self._task("eval", len(prompts))
        for prompt in prompts:
            res = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=self.cfg.temperature,
                                             top_p=self.cfg.top_p, seed=self._seed, stop=stop)
            self._seed += 1
            out.append(Completion(res["choices"][0]["text"], res["usage"]["completion_tokens"]))
            self._advance(task)
        return out


class EndpointBackend(Backend):
    """An OpenAI-compatible server (vLLM, SGLang, llama.cpp): chat completions for plain eval through
    `OpenAITeacher` (retries, key handling); budget forcing continues raw text on `/completions` with an
    httpx client, so it needs the model's chat template from a local tokenizer folder (`tokenizer`)."""

    name = "endpoint"

    def __init__(self, model: str, cfg: EvalCfg, chat_template: str | None = None, progress=None,
                 served_model: str = "default", api_key_env: str | None = None, tokenizer: str | None = None):
        super().__init__(model, cfg, chat_template, progress)
        from distill.sample.teacher.openai import OpenAITeacher

        self.teacher = OpenAITeacher(served_model, [model], api_key_env)
        self.tokenizer_ref = tokenizer
        self.tok = None

    def __enter__(self) -> Self:
        if self.tokenizer_ref:
            from transformers import AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(self.tokenizer_ref)
            if self.chat_template:
                self.tok.chat_template = self.chat_template
        return self

    def _need_tok(self):
        if self.tok is None:
            raise DistillError("thinking budgets through an endpoint continue raw text on /v1/completions and "
                               "need the model's chat template: pass --tokenizer HF_FOLDER")
        return self.tok

    def render(self, conversation: list[dict]) -> str:
        return self._need_tok().apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self._need_tok()(text, add_special_tokens=False)["input_ids"])

    def _params(self, k: int, max_tokens: int) -> dict:
        return {"max_tokens": max_tokens, "temperature": self.cfg.temperature, "top_p": self.cfg.top_p,
                "seed": self.cfg.seed + k}

    def _gather(self, calls: list, what: str) -> list[Completion]:
        import httpx

        from distill.sample.teacher.base import TeacherError

        task = self._task(what, len(calls))
        gate = asyncio.Semaphore(self.cfg.batch_size)

        async def one(client, call):
            async with gate:
                for attempt in range(3):
                    try:
                        res = await call(client)
                        self._advance(task)
                        return res
                    except TeacherError as e:
                        if not e.retryable or attempt == 2:
                            raise DistillError(f"endpoint {self.model} failed: {e}; is the server up?") from None
                        await asyncio.sleep(e.retry_after or 2 ** attempt)

        async def main():
            # The teacher's HTTP session is bound to this event loop: opened and closed inside it.
            await self.teacher.open(self.cfg.batch_size, self.cfg.timeout_s)
            try:
                async with httpx.AsyncClient(timeout=self.cfg.timeout_s) as client:
                    return await asyncio.gather(*(one(client, c) for c in calls))
            finally:
                await self.teacher.close()

        return asyncio.run(main())

    def generate(self, conversations: list[list[dict]], max_tokens: int) -> list[Completion]:
        def call(k, conv):
            async def go(client):  # chat goes through the teacher's own session; `client` serves /completions
                g = await self.teacher.generate(conv, self._params(k, max_tokens))
                return Completion(g.text, g.completion_tokens or 0)
            return go

        return self._gather([call(k, c) for k, c in enumerate(conversations)], "eval")

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        import httpx

        from distill.sample.teacher.base import TeacherError

        url = self.teacher.base_urls[0] + "/completions"

        def call(k, prompt):
            async def go(client):
                body = {"model": self.teacher.model, "prompt": prompt, "stop": stop, **self._params(k, max_tokens)}
                try:
                    resp = await client.post(url, json=body, headers=self.teacher._headers)
                except httpx.TransportError as e:
                    raise TeacherError("connection", f"{type(e).__name__} from {url}") from None
                if resp.status_code >= 400:
                    kind = "server_error" if resp.status_code >= 500 else "client_error"
                    raise TeacherError(kind, f"{resp.status_code} from {url}: {resp.text[:200]}")
                data = resp.json()
                text = data["choices"][0]["text"]
                return Completion(_cut(text, stop), (data.get("usage") or {}).get("completion_tokens", 0))
            return go

        return self._gather([call(k, p) for k, p in enumerate(prompts)], "eval")


def is_endpoint(model: str) -> bool:
    return str(model).startswith(("http://", "https://", "${"))


def open_backend(model: str, cfg: EvalCfg, chat_template: str | None = None, progress=None, **endpoint) -> Backend:
    """The backend for `model`: a URL is an endpoint, a `.gguf` file llama.cpp, anything else an HF
    folder, hub name or `embedded:NAME`."""
    model = str(model)
    if is_endpoint(model):
        return EndpointBackend(model, cfg, chat_template, progress, **endpoint)
    if model.endswith(".gguf"):
        if not Path(model).exists():
            raise DistillError(f"{model} not found")
        return GGUFBackend(model, cfg, chat_template, progress)
    return HFBackend(model, cfg, chat_template, progress)
