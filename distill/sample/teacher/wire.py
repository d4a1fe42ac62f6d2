"""The OpenAI chat-completions wire format: responses (whole or streamed as server-sent events) into
one Generation, and HTTP statuses into classified TeacherErrors.

    gen = parse_chat_response(json.loads(body))          # a whole chat.completion
    acc = StreamAccumulator(); acc.feed(line) ...; acc.generation(url)   # a streamed one
    raise error_for_status(400, body_text, None, url, model, "DEEPSEEK_API_KEY")
"""

from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime

from distill.r1 import THINK_CLOSE, normalise_completion
from distill.sample.teacher.base import Generation, TeacherError

# How vLLM, SGLang, llama.cpp, OpenAI and DeepSeek say that a prompt does not fit the context.
_CONTEXT = re.compile(r"context[ _-]?(length|window|size)|maximum context|too many tokens|prompt is too long|"
                      r"exceeds? the (available )?context|max_model_len", re.IGNORECASE)


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


def error_for_status(status: int, text: str, retry_after: float | None, url: str, model: str,
                     api_key_env: str | None) -> TeacherError:
    """A non-200 answer as a TeacherError of the right kind (see TeacherError for what each means).
    `text` is the start of the body, already redacted."""
    if status == 429:
        return TeacherError("rate_limited", f"429 from {url}", retry_after)
    if status == 408:
        return TeacherError("timeout", f"408 from {url}", retry_after)
    if status >= 500:
        return TeacherError("server_error", f"{status} from {url}", retry_after)
    if status in (401, 403):
        return TeacherError("auth", f"{status} from {url}: the endpoint refused the key in "
                                    f"${api_key_env or '(no api_key_env set)'}")
    if status == 404:
        return TeacherError("not_found", f"404 from {url}: it does not serve model `{model}` ({text}); "
                                         "check `teacher.model` and `teacher.base_urls`")
    if _CONTEXT.search(text):
        return TeacherError("context_overflow", f"{status} from {url}: {text}")
    return TeacherError("client_error", f"{status} from {url}: {text}")


def _generation(content: str | None, reasoning: str | None, finish: str | None, usage: dict | None,
                counted: int | None = None) -> Generation:
    """One R1-form text; the reasoning kept apart only when it cannot go into the text."""
    usage = usage or {}
    separate = reasoning if reasoning and content and THINK_CLOSE in content else None
    completion_tokens = usage.get("completion_tokens")
    return Generation(text=normalise_completion(content, reasoning), finish_reason=finish,
                      prompt_tokens=usage.get("prompt_tokens"),
                      completion_tokens=completion_tokens if completion_tokens is not None else counted,
                      reasoning_content=separate)


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
        return _generation(content, reasoning, choice.get("finish_reason"), data.get("usage"))
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise TeacherError("malformed_response", f"{type(e).__name__} {e} in the response") from None


class StreamAccumulator:
    """Chunks of a streamed chat completion (`data: {...}` lines, then `data: [DONE]`) gathered into
    one Generation. Without a usage chunk (llama_cpp.server sends none) the completion tokens are
    the chunks that carried text: one token each on llama.cpp and vLLM."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.finish: str | None = None
        self.usage: dict | None = None
        self.chunks = 0
        self.done = False

    def feed(self, line: bytes) -> None:
        line = line.strip()
        if not line.startswith(b"data:"):
            return  # blank separators, `: keep-alive` comments, `event:` lines
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        try:
            obj = json.loads(data)
            if obj.get("error"):
                raise TeacherError("server_error", f"error inside the stream: {str(obj['error'])[:200]}")
            self.usage = obj.get("usage") or self.usage
            for choice in obj.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    self.content.append(delta["content"])
                    self.chunks += 1
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning:
                    self.reasoning.append(reasoning)
                    self.chunks += 1
                self.finish = choice.get("finish_reason") or self.finish
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as e:
            raise TeacherError("malformed_response", f"a stream chunk is not a chat.completion.chunk "
                                                     f"({type(e).__name__})") from None

    def generation(self, url: str) -> Generation:
        if self.finish is None:
            raise TeacherError("connection", f"the stream from {url} ended before the generation finished")
        return _generation("".join(self.content), "".join(self.reasoning) or None, self.finish, self.usage,
                           counted=self.chunks)
