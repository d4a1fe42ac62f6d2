"""An OpenAI-compatible endpoint as an evaluation backend (vLLM, SGLang, llama.cpp's server).

With the model's tokenizer at hand (`tokenizer`: an HF folder or a .gguf; the served path always
has it) the prompt is rendered here and posted to `/v1/completions`: as token ids where we started
the server (llama-server and vLLM take them: the exact template, one BOS), as text to a URL (not every
server takes ids; a BOS the template wrote is left off when the tokenizer adds one itself, as
servers do, so there is one). Without a tokenizer,
plain evaluation goes through `/v1/chat/completions` (the server renders its own template, through
`OpenAITeacher`: retries, key handling) and budget forcing is refused.

    with EndpointBackend("http://127.0.0.1:8000/v1", cfg, served_model="student", tokenizer="student/") as b:
        outs = b.generate(conversations, max_tokens=4096)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from distill.errors import DistillError
from distill.evaluate.backends import Backend, Completion, _cut
from distill.recipe import EvalCfg

if TYPE_CHECKING:
    from typing_extensions import Self


class EndpointBackend(Backend):
    name = "endpoint"
    send_ids = False  # the served path knows its server takes token ids

    def __init__(self, model: str, cfg: EvalCfg, chat_template: str | None = None, progress=None,
                 stop_token: str | None = None, served_model: str = "default", api_key_env: str | None = None,
                 tokenizer: str | None = None):
        super().__init__(model, cfg, chat_template, progress, stop_token)
        self.served_model, self.api_key_env, self.tokenizer_ref = served_model, api_key_env, tokenizer
        self.url = model  # the served path sets it once its server is up

    def __enter__(self) -> Self:
        from distill.sample.teacher.openai import OpenAITeacher

        self.teacher = OpenAITeacher(self.served_model, [self.url], self.api_key_env)
        if self.tokenizer_ref and self.prompts is None:
            from distill.evaluate.prompts import GGUFPrompts, HFPrompts

            side = GGUFPrompts if str(self.tokenizer_ref).endswith(".gguf") else HFPrompts
            self.prompts = side.load(self.tokenizer_ref, self.chat_template)
        return self

    def _need_prompts(self):
        if self.prompts is None:
            raise DistillError("thinking budgets through an endpoint continue raw text on /v1/completions and "
                               "need the model's chat template: pass --tokenizer HF_FOLDER (or the .gguf)")
        return self.prompts

    def render(self, conversation: list[dict]) -> str:
        return self._need_prompts().render(conversation)

    def count_tokens(self, text: str) -> int:
        return self._need_prompts().count(text)

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
                            raise DistillError(f"endpoint {self.url} failed: {e}; is the server up?") from None
                        await asyncio.sleep(e.retry_after or 2 ** attempt)

        async def main():
            # The teacher's HTTP session is bound to this event loop: opened and closed inside it.
            await self.teacher.open(self.cfg.batch_size, self.cfg.timeout_s)
            limits = httpx.Limits(max_connections=self.cfg.batch_size)
            try:
                async with httpx.AsyncClient(timeout=self.cfg.timeout_s, limits=limits) as client:
                    return await asyncio.gather(*(one(client, c) for c in calls))
            finally:
                await self.teacher.close()

        return asyncio.run(main())

    def generate(self, conversations: list[list[dict]], max_tokens: int) -> list[Completion]:
        if self.prompts is not None:  # render and tokenize here: ids on /completions
            return super().generate(conversations, max_tokens)

        def call(k, conv):
            async def go(client):  # chat goes through the teacher's own session
                params = self._params(k, max_tokens) | ({"stop": self.stops()} if self.stop_token else {})
                g = await self.teacher.generate(conv, params)
                finish = "length" if g.finish_reason == "length" else "stop"
                return Completion(g.text, g.completion_tokens or 0, finish, g.prompt_tokens)
            return go

        return self._gather([call(k, c) for k, c in enumerate(conversations)], "eval")

    def _prompt(self, side, prompt: str) -> list[int] | str:
        if self.send_ids:
            return side.encode(prompt)
        bos = side.bos_text()
        return prompt.removeprefix(bos) if bos and side.wants_bos else prompt

    def complete(self, prompts: list[str], max_tokens: int, stop: list[str] | None = None) -> list[Completion]:
        import httpx

        from distill.sample.teacher.base import TeacherError

        side = self._need_prompts()
        url = self.teacher.base_urls[0] + "/completions"
        stops = self.stops(stop)

        def call(k, prompt):
            async def go(client):
                body = {"model": self.teacher.model, "prompt": self._prompt(side, prompt), **self._params(k, max_tokens)}
                if stops:
                    body["stop"] = stops
                try:
                    resp = await client.post(url, json=body, headers=self.teacher._headers)
                except httpx.TransportError as e:
                    raise TeacherError("connection", f"{type(e).__name__} from {url}") from None
                if resp.status_code >= 400:
                    kind = "server_error" if resp.status_code >= 500 else "client_error"
                    raise TeacherError(kind, f"{resp.status_code} from {url}: {resp.text[:200]}")
                data = resp.json()
                choice, usage = data["choices"][0], data.get("usage") or {}
                text, _ = _cut(choice["text"], stops)
                finish = "length" if choice.get("finish_reason") == "length" else "stop"
                return Completion(text, usage.get("completion_tokens", 0), finish, usage.get("prompt_tokens"))
            return go

        return self._gather([call(k, p) for k, p in enumerate(prompts)], "eval")
