"""The teacher interface: one async call that turns chat messages into one R1-form generation.

A backend is a class with `name`, a context manager that starts/stops whatever it needs, and
`generate(client, messages, params)`. Register it in `distill.teacher.BACKENDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass
class Generation:
    text: str  # R1 form: "<think> ... </think> answer"
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_content: str | None = None


class TeacherError(Exception):
    """A failed request, classified so the sampler knows whether and when to retry.

    kind: connection | timeout | rate_limited | server_error | client_error | malformed_response
    """

    RETRYABLE = {"connection", "timeout", "rate_limited", "server_error", "malformed_response"}

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in self.RETRYABLE


class Teacher:
    name: str = "teacher"

    def __enter__(self) -> "Teacher":
        return self

    def __exit__(self, *exc) -> None:
        return None

    async def generate(self, client: httpx.AsyncClient, messages: list[dict], params: dict) -> Generation:
        raise NotImplementedError
