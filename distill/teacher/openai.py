"""Any OpenAI-compatible chat endpoint: vLLM, SGLang, llama.cpp's server, DeepSeek's API.

Several base URLs (data-parallel servers) are used round-robin. The API key is read from the
environment variable the recipe names and is sent only in the Authorization header: it never
appears in traces, logs or error messages.
"""

from __future__ import annotations

import itertools
import json
import os

import httpx

from distill.errors import DistillError
from distill.prompts import normalise_completion
from distill.teacher.base import Generation, Teacher, TeacherError


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _expand(url: str) -> str:
    """`${VAR}` in a recipe URL is read from the environment, so recipes carry no hosts."""
    if url.startswith("${") and url.endswith("}"):
        var = url[2:-1]
        value = os.environ.get(var)
        if not value:
            raise DistillError(f"set {var} to the teacher's OpenAI-compatible base URL, e.g. http://host:8000/v1")
        return value
    return url


class OpenAITeacher(Teacher):
    def __init__(self, model: str, base_urls: list[str], api_key_env: str | None = None):
        self.name = model
        self.model = model
        self.base_urls = [_expand(u).rstrip("/") for u in base_urls]
        self._next_url = itertools.cycle(self.base_urls)
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise DistillError(f"set the environment variable {api_key_env} to the teacher's API key")
            self._headers["Authorization"] = f"Bearer {key}"

    async def generate(self, client: httpx.AsyncClient, messages: list[dict], params: dict) -> Generation:
        url = next(self._next_url) + "/chat/completions"
        body = {"model": self.model, "messages": messages, **params}
        try:
            resp = await client.post(url, json=body, headers=self._headers)
        except httpx.TimeoutException as e:
            raise TeacherError("timeout", f"{type(e).__name__} from {url}") from None
        except httpx.TransportError as e:
            raise TeacherError("connection", f"{type(e).__name__} from {url}") from None
        if resp.status_code == 429:
            raise TeacherError("rate_limited", f"429 from {url}", _retry_after(resp))
        if resp.status_code >= 500:
            raise TeacherError("server_error", f"{resp.status_code} from {url}", _retry_after(resp))
        if resp.status_code >= 400:
            raise TeacherError("client_error", f"{resp.status_code} from {url}: {resp.text[:200]}")
        try:
            data = resp.json()
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if content is None and not reasoning:
                raise KeyError("content")
            usage = data.get("usage") or {}
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise TeacherError("malformed_response", f"{type(e).__name__} in response from {url}") from None
        return Generation(
            text=normalise_completion(content, reasoning),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            reasoning_content=reasoning,
        )
