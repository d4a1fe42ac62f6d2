"""The teacher interface: one async call that turns chat messages into one R1-form generation.

A backend is a class with `name`, a (sync) context manager that starts/stops what it needs
(a server, a model), async `open(max_concurrent, timeout_s)` / `close()` for resources bound to
the sampler's event loop (an HTTP session), and `generate(messages, params)`. Register it with
one line in `distill.teacher.BACKENDS`.

    with open_teacher(cfg, run_dir) as teacher:
        await teacher.open(max_concurrent=64, timeout_s=600)
        gen = await teacher.generate(messages, {"temperature": 0.6, "max_tokens": 1024})
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generation:
    text: str  # R1 form: "<think> ... </think> answer"
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_content: str | None = None


class TeacherError(Exception):
    """A failed request, classified so the sampler knows whether and when to retry.

    kind: connection | timeout | rate_limited | server_error | malformed_response (retried);
    client_error | auth (not retried: the same request would fail the same way).
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

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc) -> None:
        return None

    async def open(self, max_concurrent: int, timeout_s: float) -> None:
        """Create event-loop-bound resources; called once inside the sampler's loop."""

    async def close(self) -> None:
        """Release what `open` created."""

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        raise NotImplementedError
