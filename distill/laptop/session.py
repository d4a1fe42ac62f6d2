"""`distill chat`: a multi-turn conversation with an exported student in the terminal.

The context defaults to the GGUF's training context, capped by free RAM (the KV cache of every
token must fit beside the mapped model) and at 32k (R1's generation length), and is said at the
start. Earlier turns are replayed with their answers only (their thinking removed, as the GGUF's
template also does); when the history no longer leaves half the context free, the oldest turns
go. In the loop: `/reset`, `/think on|off`, `/budget N|off`, `/help`.

    distill chat export/smol/smol-Q4_K_M.gguf --ctx 8192 --hide-thinking -p "What is 17 + 25?"
"""

from __future__ import annotations

import os
from pathlib import Path

from distill.errors import DistillError
from distill.export.context import THINKING_CTX, ContextFacts, read_context
from distill.laptop.chat import WAIT, Reply, reply
from distill.r1 import student_messages

HELP = "/reset (forget the conversation)  /think on|off  /budget N|off (thinking tokens)  /help"
GiB = 1 << 30


def free_memory() -> int | None:
    """Bytes of memory available now (psutil, else /proc/meminfo); None where neither tells."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def choose_ctx(facts: ContextFacts, requested: int | None, available: int | None,
               slots: int = 1) -> tuple[int, str]:
    """The context (per slot, of `slots` served at once) to run with and the sentence that says why."""
    # The mapped weights stay resident while generating; the KV caches get most of what is left.
    per_token = facts.kv_bytes_per_token * slots
    fits = None if available is None else max(0, int((available - facts.model_bytes) * 0.8)) // per_token
    if requested:
        ctx, why = requested, "--ctx"
        if requested > facts.train_ctx:
            why += f"; beyond the model's training context of {facts.train_ctx:,}"
        if fits is not None and requested > fits:
            why += f"; its KV cache may not fit in the {_size(available)} free"
    else:
        ctx, why = facts.train_ctx, "the model's training context"
        if ctx > THINKING_CTX:
            ctx, why = THINKING_CTX, f"R1's generation length; the training context is {facts.train_ctx:,}"
        if fits is not None and fits < ctx:
            ctx = max(512, fits // 256 * 256)
            why = f"capped by free RAM; the training context is {facts.train_ctx:,}"
    free = f", {_size(available)} free" if available is not None else ""
    each = f" each for {slots} requests at once" if slots > 1 else ""
    return ctx, f"context {ctx:,} tokens{each} ({why}; KV cache {_size(ctx * per_token)}{free})"


def _size(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / (1 << 20):.0f} MiB"


class Conversation:
    """The history of one chat; each `ask` replays it (answers only) and adds the new turn."""

    def __init__(self, llm, think: bool = True, think_budget: int | None = None, max_tokens: int | None = None,
                 temperature: float = 0.6, min_think: int = 0):
        self.llm, self.think, self.think_budget = llm, think, think_budget
        self.max_tokens, self.temperature, self.min_think = max_tokens, temperature, min_think
        self.history: list[dict] = []
        self.last_prompt = ""

    def reset(self) -> None:
        self.history = []

    def _fit(self, question: str) -> tuple[list[dict], int]:
        from distill.llamacpp import render_prompt

        n_ctx, dropped = self.llm.n_ctx(), 0
        while True:
            messages = self.history[2 * dropped:] + student_messages(question)
            prompt = render_prompt(self.llm, messages)
            n = len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
            if n <= n_ctx // 2 or 2 * dropped >= len(self.history):
                break
            dropped += 1  # the oldest exchange goes: thinking needs the room more
        if n >= n_ctx - min(256, n_ctx // 8):
            raise DistillError(f"this question is {n:,} tokens, too long for the context of {n_ctx:,}; "
                               "restart with a larger --ctx")
        self.history = self.history[2 * dropped:]
        self.last_prompt = prompt
        return messages, dropped

    def ask(self, question: str, on_text=None, counts: dict | None = None) -> tuple[Reply, int]:
        """The student's reply and how many earlier exchanges were dropped to fit the context."""
        messages, dropped = self._fit(question)
        r = reply(self.llm, messages, think_budget=self.think_budget, max_tokens=self.max_tokens,
                  temperature=self.temperature, on_text=on_text, min_think=self.min_think, think=self.think,
                  counts=counts)
        self.history += [messages[-1], {"role": "assistant", "content": r.answer}]
        return r, dropped


def command(conv: Conversation, line: str) -> str:
    """Apply one /command; the line to show."""
    word, _, arg = line[1:].strip().partition(" ")
    arg = arg.strip().lower()
    if word == "reset":
        conv.reset()
        return "conversation forgotten"
    if word == "think" and arg in ("on", "off"):
        conv.think = arg == "on"
        return f"thinking {arg}"
    if word == "budget" and (arg == "off" or arg.isdigit() and int(arg) > 0):
        conv.think_budget = None if arg == "off" else int(arg)
        return "no thinking budget" if arg == "off" else f"thinking closed after {arg} tokens"
    return HELP


def _notes(r: Reply, conv: Conversation, n_ctx: int, dropped: int) -> list[str]:
    notes = []
    if dropped:
        notes.append(f"dropped the {dropped} oldest exchange(s) to fit the context")
    if r.budget_forced:
        notes.append(f"thinking closed at the budget of {conv.think_budget} tokens")
    if r.context_forced:
        notes.append(f"thinking closed near the context limit of {n_ctx:,} tokens to leave room for the answer")
    if r.waits:
        notes.append(f"thinking extended {r.waits}× with '{WAIT}'")
    if r.stop == "context":
        notes.append(f"stopped: the context of {n_ctx:,} tokens is full; /reset, or restart with a larger --ctx")
    elif r.stop == "max_tokens":
        notes.append(f"stopped at --max-tokens {conv.max_tokens}")
    return notes


def interactive(path: str, show_thinking: bool, question: str | None, ctx: int | None = None,
                max_tokens: int | None = None, temperature: float = 0.6, think: bool = True,
                think_budget: int | None = None, min_think: int = 0, threads: int | None = None) -> None:
    from rich.console import Console

    from distill.llamacpp import load_gguf

    console = Console()
    n_ctx, said = choose_ctx(read_context(Path(path)), ctx, free_memory())
    console.print(f"[dim]{said}[/]", highlight=False, soft_wrap=True)
    conv = Conversation(load_gguf(path, n_ctx=n_ctx, n_threads=threads or os.cpu_count()), think, think_budget, max_tokens,
                        temperature, min_think)

    def one(q: str) -> None:
        state, counts = {"answering": False}, {}

        def on_text(part: str, text: str) -> None:
            if part == "thinking":
                if show_thinking:
                    console.print(text, end="", style="dim", markup=False, highlight=False, soft_wrap=True)
                return
            if not state["answering"]:
                state["answering"] = True
                if show_thinking:
                    console.print()
                elif counts["thinking"]:
                    console.print(f"[dim]thought for {counts['thinking']} tokens[/]")
            console.print(text, end="", markup=False, highlight=False, soft_wrap=True)

        try:
            r, dropped = conv.ask(q, on_text, counts)
        except DistillError as e:
            console.print(f"[red]{e}[/]", highlight=False)
            return
        if not state["answering"] and not show_thinking and r.thinking_tokens:
            console.print(f"[dim]thought for {r.thinking_tokens} tokens[/]")
        notes = _notes(r, conv, n_ctx, dropped)
        console.print(f"\n[dim]({'; '.join(notes)})[/]" if notes else "", end="", highlight=False)
        console.print()

    if question:
        one(question)
        return
    console.print(f"[bold]{path}[/] — type a question; {HELP}; an empty line or Ctrl-D quits", highlight=False)
    while True:
        try:
            q = console.input("[bold cyan]> [/]")
        except (EOFError, KeyboardInterrupt):
            break
        if not q.strip():
            break
        if q.startswith("/"):
            console.print(f"[dim]{command(conv, q)}[/]", highlight=False)
            continue
        one(q)
