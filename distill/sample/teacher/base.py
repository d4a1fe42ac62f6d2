"""The teacher interface: one async call that turns chat messages into one R1-form generation.

A backend is a class with `name`, a (sync) context manager that starts/stops what it needs
(a server, a model), `configure(sampling)` to take the sampling settings it cares about (timeouts,
streaming), async `open(max_concurrent, timeout_s)` / `close()` for resources bound to the
sampler's event loop (an HTTP session), an optional async `preflight()` that checks the teacher
before any sample is paid for, and `generate(messages, params)`. Register it with one line in
`distill.sample.teacher.BACKENDS`.

    with open_teacher(cfg, run_dir) as teacher:
        teacher.configure(recipe.sampling)
        await teacher.open(max_concurrent=64, timeout_s=600)
        await teacher.preflight()
        gen = await teacher.generate(messages, {"temperature": 0.6, "max_tokens": 1024})
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generation:
    text: str  # R1 form: "<think> ... </think> answer", the reasoning inside it
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    # Only when the reasoning could not be put into `text` (it already held a closed think block):
    # the reasoning is stored once, never in both places.
    reasoning_content: str | None = None


class TeacherError(Exception):
    """A failed request, classified so the sampler knows whether and when to retry.

    Transient (retried with backoff): connection, timeout, idle_timeout (a stream that stopped
    sending tokens), rate_limited, server_error, malformed_response.
    Permanent (recorded once, never retried: the same request fails the same way): client_error
    (a 4xx other than 401/403/404/408/429, e.g. a content refusal), context_overflow.
    Fatal (stop the run: every further request would fail too): auth (401/403), not_found (404,
    the endpoint does not serve the model).
    """

    RETRYABLE = {"connection", "timeout", "idle_timeout", "rate_limited", "server_error", "malformed_response"}
    PERMANENT = {"client_error", "context_overflow"}
    FATAL = {"auth", "not_found"}

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in self.RETRYABLE

    @property
    def permanent(self) -> bool:
        return self.kind in self.PERMANENT

    @property
    def fatal(self) -> bool:
        return self.kind in self.FATAL


class Teacher:
    name: str = "teacher"

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def configure(self, sampling) -> None:
        """Take what this backend needs from the recipe's `sampling` section (a SamplingCfg)."""

    async def open(self, max_concurrent: int, timeout_s: float) -> None:
        """Create event-loop-bound resources; called once inside the sampler's loop."""

    async def preflight(self) -> None:
        """Check the teacher before sampling starts; raise DistillError on a setting that would
        make every request fail (a model the endpoint does not serve)."""

    async def close(self) -> None:
        """Release what `open` created."""

    async def generate(self, messages: list[dict], params: dict) -> Generation:
        raise NotImplementedError

    def url_stats(self) -> dict:
        """Per-endpoint figures for the summary (requests, errors, tokens); {} for local backends."""
        return {}
