"""Progress of a long stage that shows in a terminal AND in a log file.

On a terminal: a rich progress bar. Anywhere else (nohup, Slurm, a pipe): one plain line on stderr
every `every_s` seconds and a last one at the end, so a log read mid-run says how far it got:

    sampling: 1200/5000 (24.0%), 3.1/s, ETA 20m29s, 1520 completion tok/s, 12 errors, 1 failed

    with Progress("sampling", total=5000, every_s=30) as progress:
        progress.update(done, "1520 completion tok/s, 12 errors")
"""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """`mode`: "auto" (a bar on a terminal, lines elsewhere), "bar", "lines" or "off"."""

    def __init__(self, label: str, total: int | None, every_s: float = 30.0, mode: str = "auto",
                 unit: str = ""):
        self.label, self.total, self.every_s, self.unit = label, total, every_s, unit
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self.t0 = self._last_line = time.monotonic()
        self._last_bar = 0.0
        self._bar = self._task = None
        self.done = 0
        self.extra = ""

    def __enter__(self) -> Progress:
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[extra]}"), TextColumn("ETA"), TimeRemainingColumn(),
                            transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, extra="")
        return self

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = self.done / elapsed
        head = f"{self.label}: {self.done}"
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else None
            head += (f"/{self.total} ({self.done / self.total:.1%}), {rate:.1f}{self.unit}/s, "
                     f"ETA {_duration(left) if left is not None else '?'}")
        else:
            head += f", {rate:.1f}{self.unit}/s"
        return head + (f", {self.extra}" if self.extra else "") + f", {_duration(elapsed)} elapsed"

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        self.done, self.extra = done, extra
        now = time.monotonic()
        if self.mode == "lines" and (force or now - self._last_line >= self.every_s):
            self._last_line = now
            print(self.line(), file=sys.stderr, flush=True)
        elif self.mode == "bar" and (force or now - self._last_bar > 0.2):  # cheap at thousands of updates/s
            self._last_bar = now
            self._bar.update(self._task, completed=done, extra=extra)

    def __exit__(self, *exc) -> None:
        self.update(self.done, self.extra, force=True)
        if self._bar is not None:
            self._bar.__exit__(*exc)
