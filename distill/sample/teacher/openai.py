"""Any OpenAI-compatible chat endpoint: vLLM, SGLang, llama.cpp's server, DeepSeek's API.

Several base URLs (data-parallel servers) are used round-robin; a URL that refuses connections
rests for a few seconds while the others take its share. The API key is read from the
environment variable the recipe names and is sent only in the Authorization header: it never
appears in traces, logs, reports or error messages (a server that echoes it back is redacted).

The transport is aiohttp: measured here with 1,000 requests in flight against an instant
loopback server, httpx reached 57 requests/s (14 ms CPU each, its pool scans every connection)
and aiohttp about 3,900 requests/s (0.2 ms CPU each); see bench/sampler.py.

    teacher = OpenAITeacher("deepseek-reasoner", ["https://api.deepseek.com/v1"], "DEEPSEEK_API_KEY")
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from email.utils import parsedate_to_datetime

from distill.errors import DistillError
from distill.r1 import normalise_completion
from distill.sample.teacher.base import Generation, Teacher, TeacherError

URL_REST_S = 5.0  # how long a URL that refused a connection is skipped


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def parse_chat_response(data: object) -> Generation:
    """An OpenAI chat.completion object -> Generation; a missing piece raises malformed_response."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if content is None and not reasoning:
            raise KeyError("content")
        if not isinstance(content, (str, type(None))) or not isinstance(reasoning, (str, type(None))):
            raise TypeError("content is not text")
        usage = data.get("usage") or {}
        return Generation(
            text=normalise_completion(content, reasoning),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            reasoning_content=reasoning,
        )
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise TeacherError("malformed_response", f"{type(e).__name__} {e} in the response") from None


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


class OpenAITeacher(Teacher):
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
        self._turn = 0
        self._rest_until: dict[str, float] = {}
        self.requests_by_url: Counter = Counter()
        self._session = None
        self._timeout_s = 600.0

    def __repr__(self) -> str:  # never the headers
        return f"OpenAITeacher(model={self.model!r}, base_urls={self.base_urls!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _pick_url(self) -> str:
        now = time.monotonic()
        for _ in range(len(self.base_urls)):
            url = self.base_urls[self._turn % len(self.base_urls)]
            self._turn += 1
            if self._rest_until.get(url, 0.0) <= now:
                return url
        return self.base_urls[self._turn % len(self.base_urls)]  # all resting: try anyway

    async def open(self, max_concurrent: int, timeout_s: float) -> None:
        import aiohttp

        self._timeout_s = timeout_s
        # limit_per_host=0: several servers may share a host (one per GPU on different ports).
        connector = aiohttp.TCPConnector(limit=max_concurrent, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(10.0, timeout_s)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        import aiohttp

        if self._session is None:
            await self.open(1, self._timeout_s)
        base = self._pick_url()
        url = base + "/chat/completions"
        self.requests_by_url[base] += 1
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode()
        try:
            async with self._session.post(url, data=body, headers=self._headers) as resp:
                status = resp.status
                retry_after = retry_after_s(resp.headers.get("Retry-After"))
                raw = await resp.read()
        except asyncio.TimeoutError:
            raise TeacherError("timeout", f"no answer within {self._timeout_s:g}s from {url}") from None
        except (aiohttp.ClientError, OSError) as e:
            self._rest_until[base] = time.monotonic() + URL_REST_S
            raise TeacherError("connection", f"{type(e).__name__} from {url}") from None
        if status == 429:
            raise TeacherError("rate_limited", f"429 from {url}", retry_after)
        if status >= 500:
            raise TeacherError("server_error", f"{status} from {url}", retry_after)
        if status in (401, 403):
            raise TeacherError("auth", f"{status} from {url}: the endpoint refused the key in "
                                       f"${self.api_key_env or '(no api_key_env set)'}")
        if status >= 400:
            text = self._redact(raw[:300].decode("utf-8", "replace"))
            raise TeacherError("client_error", f"{status} from {url}: {text}")
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TeacherError("malformed_response", f"not JSON ({type(e).__name__}) from {url}") from None
        return parse_chat_response(data)
