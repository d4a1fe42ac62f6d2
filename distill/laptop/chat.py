"""One streamed reply of an exported student through llama.cpp, thinking and answer apart.

The reply is one generation: thinking, the student's own `</think>`, then its answer, so the KV
cache is never recomputed. It stops cleanly at the end of the turn, at `max_tokens`, or when the
context is full; thinking that would fill the context is closed early to leave room for an answer.
Tags never leak: a `</think>` split across tokens is held back until it is whole.

s1's budget forcing (Muennighoff et al., 2025): `think_budget` closes the thinking after N tokens
and makes the model answer; `min_think` extends thinking that ends early by replacing its
`</think>` with "Wait" (at most `max_waits` times). `think=False` prefills an empty, closed block.

    llm = load_gguf("export/smol/smol-Q4_K_M.gguf", n_ctx=8192)
    r = reply(llm, student_messages("What is 17 + 25?"), think_budget=256, on_text=print_part)
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from distill.r1 import THINK_CLOSE, THINK_OPEN

WAIT = "Wait"
CLOSE_THINKING = f"\n{THINK_CLOSE}\n\n"  # what budget forcing writes, as the training traces close it


@dataclass
class Reply:
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    budget_forced: bool  # thinking closed at `think_budget`
    waits: int = 0
    stop: str = "end"  # "end" of turn, "max_tokens", or "context" (the context is full)
    context_forced: bool = False  # thinking closed early to leave the answer room in the context


def _tag_prefix(text: str, tag: str) -> int:
    """Length of the longest tail of `text` that could be the start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkStream:
    """Streamed text split into thinking and answer. A tail that may be the start of `<think>` or
    `</think>` is held back until the next piece decides it; after `</think>` the stream pauses
    (`closed`), so a caller can still take the thinking back (s1's "Wait") before any answer shows."""

    def __init__(self, state: str):
        self.state = state  # "start" (a model may open <think> itself), "thinking", "answer"
        self.pending = self.thinking = self.answer = self.opening = ""
        self.closed = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.pending += text
        self.closed = False
        out: list[tuple[str, str]] = []
        if self.state == "start":
            head = self.pending.lstrip()
            if head.startswith(THINK_OPEN):
                cut = len(self.pending) - len(head) + len(THINK_OPEN)
                self.opening, self.pending, self.state = self.pending[:cut], self.pending[cut:], "thinking"
            elif THINK_OPEN.startswith(head):
                return out  # not decided yet
            else:
                self.state = "answer"
        if self.state == "thinking":
            at = self.pending.find(THINK_CLOSE)
            if at >= 0:
                self._emit(out, "thinking", self.pending[:at])
                self.pending, self.state, self.closed = self.pending[at + len(THINK_CLOSE):], "answer", True
                return out
            keep = _tag_prefix(self.pending, THINK_CLOSE)
            self._emit(out, "thinking", self.pending[: len(self.pending) - keep])
            self.pending = self.pending[len(self.pending) - keep:]
            return out
        if not self.answer:
            self.pending = self.pending.lstrip()  # the blank line after </think>
        self._emit(out, "answer", self.pending)
        self.pending = ""
        return out

    def finish(self) -> list[tuple[str, str]]:
        """The held-back tail: not a tag after all."""
        out: list[tuple[str, str]] = []
        self._emit(out, "answer" if self.state == "start" else self.state, self.pending)
        self.pending = ""
        return out

    def _emit(self, out: list, part: str, text: str) -> None:
        if text:
            setattr(self, part, getattr(self, part) + text)
            out.append((part, text))


def _is_end(llm, token: int) -> bool:
    import llama_cpp

    return token == llm.token_eos() or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token)


def _generate(llm, ids: list[int], temperature: float, limit: int, stopped: dict) -> Iterator[tuple[int, str]]:
    """(token, text) per generated token after `ids`, UTF-8 held back until whole. Ends at the end of
    the turn (stopped["why"] = "end"), after `limit` tokens ("max_tokens") or at a full context."""
    room = llm.n_ctx() - len(ids)
    if limit <= 0 or room <= 0:
        stopped["why"] = "max_tokens" if limit <= 0 else "context"
        return
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    n = 0
    try:
        # The template writes BOS itself where the format has one, as in training: ids carry no extra.
        for token in llm.generate(ids, temp=temperature, top_p=0.95, top_k=40 if temperature > 0 else 1,
                                  min_p=0.0, repeat_penalty=1.0):
            if _is_end(llm, token):
                stopped["why"] = "end"
                return
            yield token, decoder.decode(llm.detokenize([token], special=False))
            n += 1
            if n >= limit or n >= room:
                stopped["why"] = "max_tokens" if n >= limit else "context"
                return
    except RuntimeError:  # llama_decode failed: no room left in the KV cache
        stopped["why"] = "context"


def reply(llm, messages: list[dict] | None = None, prompt_text: str | None = None, think_budget: int | None = None,
          max_tokens: int | None = None, temperature: float = 0.6,
          on_text: Callable[[str, str], None] | None = None, min_think: int = 0, max_waits: int = 2,
          think: bool = True, counts: dict | None = None) -> Reply:
    """Answer the conversation `messages` (rendered by the GGUF's template) or the raw `prompt_text`;
    `on_text(part, text)` streams each piece as part "thinking" or "answer"; `counts` (a dict, if
    given) holds the tokens generated so far in each part while the reply streams."""
    from distill.llamacpp import render_prompt

    emit = on_text or (lambda part, text: None)
    prompt = prompt_text if prompt_text is not None else render_prompt(llm, messages or [])
    open_block = prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)  # the template prefilled <think>
    if not think:
        prompt += CLOSE_THINKING if open_block else THINK_OPEN + CLOSE_THINKING
    stream = ThinkStream("answer" if not think else "thinking" if open_block else "start")
    ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    n_ctx, limit = llm.n_ctx(), max_tokens if max_tokens is not None else 1 << 30
    reserve = min(256, n_ctx // 8)  # answer room kept free while thinking
    counts = counts if counts is not None else {}
    counts.update(thinking=0, answer=0)
    forced = context_forced = False
    waits = 0
    stopped: dict = {}
    while True:
        again = None
        for token, text in _generate(llm, ids, temperature, limit - sum(counts.values()), stopped):
            ids.append(token)
            counts["answer" if stream.state == "answer" else "thinking"] += 1
            for part, piece in stream.feed(text):
                emit(part, piece)
            if stream.closed and counts["thinking"] < min_think and waits < max_waits:
                again = "wait"  # s1: the model wanted to stop thinking early; make it go on
            elif stream.state != "answer" and think_budget is not None and counts["thinking"] >= think_budget:
                again, forced = "close", True
            elif stream.state != "answer" and len(ids) >= n_ctx - reserve:
                again, context_forced = "close", True
            if again:
                break
        if not again and stopped.get("why") == "end" and stream.state == "thinking":
            # Ending its turn inside <think> is the student wanting to stop thinking: as with </think>.
            again = "wait" if counts["thinking"] < min_think and waits < max_waits else "close"
        if again == "wait":
            waits += 1
            extra = ("" if stream.thinking.endswith(("\n", " ")) else "\n") + WAIT
            stream.state, stream.pending, stream.thinking = "thinking", "", stream.thinking + extra
            emit("thinking", extra)
            # Re-tokenized from text: the student's own </think> is taken out of its context.
            ids = llm.tokenize((prompt + stream.opening + stream.thinking).encode("utf-8"), add_bos=False,
                               special=True)
            continue
        if again == "close":
            # A held-back tail is the start of the student's own </think>: complete it rather than show it.
            close = THINK_CLOSE[len(stream.pending):] + "\n\n" if stream.state == "thinking" and stream.pending \
                else CLOSE_THINKING
            stream.state, stream.pending = "answer", ""
            ids += llm.tokenize(close.encode("utf-8"), add_bos=False, special=True)
            limit = max(limit, sum(counts.values()) + 16)  # a forced close always leaves an answer some tokens
            continue
        break
    for part, piece in stream.feed("") + stream.finish():
        emit(part, piece)
    return Reply(stream.thinking.strip(), stream.answer.strip(), counts["thinking"], counts["answer"], forced,
                 waits, stopped.get("why", "end"), context_forced)
