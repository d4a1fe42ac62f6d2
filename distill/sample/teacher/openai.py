"""Any OpenAI-compatible chat endpoint: vLLM, SGLang, llama.cpp's server, DeepSeek's API.

Responses are streamed (`sampling.stream`): a server that stops sending tokens for
`sampling.idle_timeout_s` is abandoned (`idle_timeout`, retried elsewhere) and rested, instead of
holding a worker until `timeout_s`. Each request goes to the least-loaded healthy URL (fewest
requests in flight; ties in turn); a URL that refused a connection or hung rests for a while.
Before sampling, `preflight` asks every URL's `/models` and stops at once, listing the served
names, when the recipe's model is not among them. Per-URL figures go into the sampling summary.

The API key is read from the environment variable the recipe names and is sent only in the
Authorization header: it never appears in traces, logs, reports or error messages (a server that
echoes it back is redacted). The transport is aiohttp: measured here with 1,000 requests in flight
against an instant loopback server, httpx reached 57 requests/s (14 ms CPU each, its pool scans
every connection) and aiohttp about 3,900 requests/s (0.2 ms CPU each); see bench/sampler.py.

    teacher = OpenAITeacher("deepseek-reasoner", ["https://api.deepseek.com/v1"], "DEEPSEEK_API_KEY")
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

from distill.errors import DistillError
from distill.sample.teacher.base import Generation, Teacher, TeacherError
from distill.sample.teacher.wire import (
    StreamAccumulator,
    error_for_status,
    parse_chat_response,
    retry_after_s,
)

__all__ = ["OpenAITeacher", "expand_urls", "parse_chat_response", "retry_after_s"]

URL_REST_S = 5.0  # how long a URL that refused a connection is skipped


def expand_urls(urls: list[str]) -> list[str]:
    """`${VAR}` in a recipe URL is read from the environment, so recipes carry no hosts; a value
    with commas names several servers (what scripts/vllm_servers.* print)."""
    out = []
    for url in urls:
        if url.startswith("${") and url.endswith("}"):
            var = url[2:-1]
            value = os.environ.get(var, "").strip()
            if not value:
                raise DistillError(f"set {var} to the teacher's OpenAI-compatible base URL(s), e.g. "
                                   "http://host:8000/v1 (several: comma-separated)")
            out += [u.strip() for u in value.split(",") if u.strip()]
        else:
            out.append(url)
    return [u.rstrip("/") for u in out]


@dataclass
class Endpoint:
    """One base URL: its load now, when it may be used again, and what it did."""

    url: str
    in_flight: int = 0
    rest_until: float = 0.0
    requests: int = 0
    ok: int = 0
    completion_tokens: int = 0
    busy_s: float = 0.0  # summed request time
    errors: Counter = field(default_factory=Counter)
    served: list[str] | None = None  # model ids its /models listed at preflight

    def figures(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "errors": dict(self.errors),
                "completion_tokens": self.completion_tokens,
                "mean_request_s": round(self.busy_s / self.requests, 3) if self.requests else None}


class OpenAITeacher(Teacher):
    # Reuse connections between requests. llama-server (as the pinned llama-cpp-python sdist builds it) breaks a
    # kept-alive connection after a streamed answer: the next request on it fails with "Can not write
    # request body" (tests/sample/test_teacher_llamacpp.py); its teacher opens one per request instead.
    keep_alive = True

    def __init__(self, model: str, base_urls: list[str], api_key_env: str | None = None):
        self.name = model
        self.model = model
        self.base_urls = expand_urls(base_urls)
        if not self.base_urls:
            raise DistillError("the openai teacher needs at least one URL in `teacher.base_urls`")
        self.api_key_env = api_key_env
        self._headers = {"Content-Type": "application/json"}
        self._secret: str | None = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise DistillError(f"set the environment variable {api_key_env} to the teacher's API key")
            self._secret = key
            self._headers["Authorization"] = f"Bearer {key}"
        self.endpoints = [Endpoint(u) for u in self.base_urls]
        self._turn = 0
        self._session = None
        self._timeout_s = 600.0
        self.stream = True
        self.idle_timeout_s: float | None = None

    def __repr__(self) -> str:  # never the headers
        return f"OpenAITeacher(model={self.model!r}, base_urls={self.base_urls!r})"

    @property
    def requests_by_url(self) -> dict[str, int]:
        return {ep.url: ep.requests for ep in self.endpoints if ep.requests}

    def url_stats(self) -> dict:
        return {ep.url: ep.figures() for ep in self.endpoints}

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def configure(self, sampling) -> None:
        self.stream = sampling.stream
        self.idle_timeout_s = sampling.idle_timeout_s

    def _pick(self) -> Endpoint:
        """The least-loaded URL that is not resting; ties go round in turn. All resting: the one
        whose rest ends first."""
        now = time.monotonic()
        n = len(self.endpoints)
        order = [self.endpoints[(self._turn + k) % n] for k in range(n)]
        self._turn += 1
        healthy = [ep for ep in order if ep.rest_until <= now]
        if not healthy:
            return min(order, key=lambda ep: ep.rest_until)
        return min(healthy, key=lambda ep: ep.in_flight)  # min keeps the first of equals: the turn

    async def open(self, max_concurrent: int, timeout_s: float) -> None:
        import aiohttp

        self._timeout_s = timeout_s
        # limit_per_host=0: several servers may share a host (one per GPU on different ports).
        connector = aiohttp.TCPConnector(limit=max_concurrent, limit_per_host=0, ttl_dns_cache=300,
                                         force_close=not self.keep_alive)
        self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def preflight(self) -> None:
        """Ask each URL which models it serves; stop at once if one does not serve ours. A URL that
        cannot be reached now rests (it may still be starting); one without a model list is not judged."""
        import aiohttp

        if self._session is None:
            await self.open(len(self.endpoints), self._timeout_s)

        async def ask(ep: Endpoint) -> None:
            try:
                async with self._session.get(ep.url + "/models", headers=self._headers,
                                             timeout=aiohttp.ClientTimeout(total=15)) as resp:
                    status, raw = resp.status, await resp.read()
            except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
                ep.rest_until = time.monotonic() + URL_REST_S
                return
            if status in (401, 403):
                raise DistillError(f"{ep.url} refused the API key in ${self.api_key_env or '(no api_key_env set)'} "
                                   f"({status}); set the right key and rerun")
            try:
                ep.served = [str(m["id"]) for m in json.loads(raw)["data"]] if status == 200 else None
            except (ValueError, KeyError, TypeError):
                ep.served = None

        await asyncio.gather(*(ask(ep) for ep in self.endpoints))
        missing = [ep for ep in self.endpoints if ep.served is not None and self.model not in ep.served]
        if missing:
            lines = "; ".join(f"{ep.url} serves {', '.join(ep.served) or 'no model'}" for ep in missing)
            raise DistillError(f"the teacher model `{self.model}` is not served: {lines}. Set `teacher.model` to "
                               "a served name, or point `teacher.base_urls` at servers that serve it")

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        if self._session is None:
            await self.open(1, self._timeout_s)
        ep = self._pick()
        ep.in_flight += 1
        ep.requests += 1
        started = time.monotonic()
        try:
            gen = await self._post(ep, messages, params)
        except TeacherError as e:
            ep.errors[e.kind] += 1
            if e.kind == "connection":
                ep.rest_until = time.monotonic() + URL_REST_S
            elif e.kind == "idle_timeout":  # a hung server: let the others take its share for a while
                ep.rest_until = time.monotonic() + max(URL_REST_S, self.idle_timeout_s or 0)
            raise
        finally:
            ep.in_flight -= 1
            ep.busy_s += time.monotonic() - started
        ep.ok += 1
        ep.completion_tokens += gen.completion_tokens or 0
        return gen

    async def _post(self, ep: Endpoint, messages: list[dict], params: dict) -> Generation:
        import aiohttp

        url = ep.url + "/chat/completions"
        body = {"model": self.model, "messages": messages, **params}
        if self.stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        # sock_read bounds the wait for each piece of the answer: for a stream, the gap between tokens.
        timeout = aiohttp.ClientTimeout(total=self._timeout_s, sock_connect=min(10.0, self._timeout_s),
                                        sock_read=self.idle_timeout_s if self.stream else None)
        try:
            async with self._session.post(url, data=json.dumps(body).encode(), headers=self._headers,
                                          timeout=timeout) as resp:
                if resp.status != 200:
                    text = self._redact((await resp.read())[:300].decode("utf-8", "replace"))
                    raise error_for_status(resp.status, text, retry_after_s(resp.headers.get("Retry-After")), url,
                                           self.model, self.api_key_env)
                if self.stream and resp.content_type == "text/event-stream":
                    acc = StreamAccumulator()
                    async for line in resp.content:
                        acc.feed(line)
                        if acc.done:
                            break
                    return acc.generation(url)
                raw = await resp.read()  # a server that ignored `stream` answers whole
        except aiohttp.SocketTimeoutError:
            raise TeacherError("idle_timeout", f"no token for {self.idle_timeout_s:g}s from {url}") from None
        except aiohttp.ConnectionTimeoutError:
            raise TeacherError("connection", f"no connection within {min(10.0, self._timeout_s):g}s to {url}") from None
        except asyncio.TimeoutError:
            raise TeacherError("timeout", f"no answer within {self._timeout_s:g}s from {url}") from None
        except (aiohttp.ClientError, OSError, ValueError) as e:  # ValueError: a line over aiohttp's limit
            raise TeacherError("connection", f"{type(e).__name__} from {url}") from None
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TeacherError("malformed_response", f"not JSON ({type(e).__name__}) from {url}") from None
        return parse_chat_response(data)
