"""Laptop chat with an exported student through llama.cpp, streaming token by token.

Thinking is shown dimmed or hidden behind a one-line "thought for N tokens". s1's budget forcing
(Muennighoff et al., 2025): `think_budget` closes the thinking after N generated tokens and makes
the model answer; `min_think` extends thinking that ends early by replacing its `</think>` with
"Wait" (at most `max_waits` times).

    distill chat export/smol/smol-Q4_K_M.gguf --hide-thinking --think-budget 256 -p "What is 17 + 25?"
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from distill.r1 import THINK_CLOSE, THINK_OPEN, user_prompt

WAIT = "Wait"


@dataclass
class Reply:
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    budget_forced: bool
    waits: int = 0


def _is_end(llm, token: int) -> bool:
    import llama_cpp

    return token == llm.token_eos() or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token)


def _pieces(llm, context: str, max_tokens: int, temperature: float, ended: dict | None = None) -> Iterator[str]:
    """Text per generated token (UTF-8 held back until whole) after `context`, ending at an
    end-of-generation token (then `ended["eog"]` is set) or after `max_tokens`. One yield per token."""
    if max_tokens <= 0:
        return
    ids = llm.tokenize(context.encode("utf-8"), add_bos=False, special=True)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    n = 0
    # The template writes BOS itself where the format has one, as in training: no add_bos.
    for token in llm.generate(ids, temp=temperature, top_p=0.95, top_k=40 if temperature > 0 else 1,
                              min_p=0.0, repeat_penalty=1.0):
        if _is_end(llm, token):
            if ended is not None:
                ended["eog"] = True
            return
        yield decoder.decode(llm.detokenize([token], special=False))
        n += 1
        if n >= max_tokens:
            return


def _think(llm, context: str, budget: int, temperature: float, min_think: int, max_waits: int,
           emit: Callable[[str, str], None]) -> tuple[str, int, bool, int]:
    """Thinking after `context` (which ends inside <think>): (text, tokens, budget hit, waits)."""
    thinking, n, waits = "", 0, 0
    while True:
        closed, ended = False, {}
        for piece in _pieces(llm, context + thinking, budget - n, temperature, ended):
            n += 1
            thinking += piece
            if THINK_CLOSE in thinking:
                closed = True
                break
            emit("thinking", piece)
        if not closed and not ended:
            return thinking, n, True, waits  # the budget ran out: close the thinking for the model
        if closed:
            thinking = thinking[: thinking.index(THINK_CLOSE)]
        # (ending its turn inside <think> is also the model wanting to stop thinking)
        if n >= min_think or waits >= max_waits:
            return thinking, n, False, waits
        # s1: the model wanted to stop thinking early; make it go on.
        waits += 1
        extra = ("" if thinking.endswith(("\n", " ")) else "\n") + WAIT
        thinking += extra
        emit("thinking", extra)


def reply(llm, question: str, prompt_text: str | None = None, think_budget: int | None = None,
          max_tokens: int = 1024, temperature: float = 0.6, on_text: Callable[[str, str], None] | None = None,
          min_think: int = 0, max_waits: int = 2) -> Reply:
    """Answer one question; `on_text(part, text)` streams each piece as part "thinking" or "answer"."""
    from distill.llamacpp import render_prompt

    emit = on_text or (lambda part, text: None)
    prompt = prompt_text or render_prompt(llm, [{"role": "user", "content": user_prompt(question)}])
    budget = min(think_budget, max_tokens) if think_budget is not None else max_tokens
    thinking, n_think, forced, waits = "", 0, False, 0
    context = prompt
    # Inside <think> already: the template prefilled it (or the caller's prompt holds open thinking).
    if prompt.rfind(THINK_OPEN) <= prompt.rfind(THINK_CLOSE):
        # No prefill in the template: the model may open <think> itself in its first tokens.
        head = ""
        for piece in _pieces(llm, prompt, 8, temperature):
            head += piece
            if THINK_OPEN in head or len(head.lstrip()) >= len(THINK_OPEN):
                break
        if head.lstrip().startswith(THINK_OPEN):
            context = prompt + head[: head.index(THINK_OPEN) + len(THINK_OPEN)]
        else:
            context = None
    if context is not None:
        thinking, n_think, forced, waits = _think(llm, context, budget, temperature, min_think, max_waits, emit)
        answer_context = context + thinking.rstrip() + f"\n{THINK_CLOSE}\n\n"
    else:
        answer_context = prompt
    answer, n_answer = "", 0
    for piece in _pieces(llm, answer_context, max(max_tokens - n_think, 16), temperature):
        answer += piece
        n_answer += 1
        emit("answer", piece)
    return Reply(thinking.strip(), answer.strip(), n_think, n_answer, forced, waits)


def interactive(path: str, show_thinking: bool, think_budget: int | None, question: str | None,
                max_tokens: int, temperature: float, min_think: int = 0) -> None:
    from rich.console import Console

    from distill.llamacpp import load_gguf

    console = Console()
    llm = load_gguf(path)

    def one(q: str) -> None:
        state = {"thought": 0, "answering": False}

        def on_text(part: str, text: str) -> None:
            if part == "thinking":
                state["thought"] += 1
                if show_thinking:
                    console.print(text, end="", style="dim", markup=False, highlight=False, soft_wrap=True)
                return
            if not state["answering"]:
                state["answering"] = True
                console.print() if show_thinking else console.print(f"[dim]thought for {state['thought']} tokens[/]")
            console.print(text, end="", markup=False, highlight=False, soft_wrap=True)

        r = reply(llm, q, think_budget=think_budget, max_tokens=max_tokens, temperature=temperature,
                  on_text=on_text, min_think=min_think)
        if not state["answering"] and not show_thinking:
            console.print(f"[dim]thought for {r.thinking_tokens} tokens[/]")
        notes = []
        if r.budget_forced:
            notes.append(f"thinking closed at the budget of {think_budget} tokens")
        if r.waits:
            notes.append(f"thinking extended {r.waits}× with '{WAIT}'")
        console.print(f"\n[dim]({'; '.join(notes)})[/]" if notes else "", end="")
        console.print()

    if question:
        one(question)
        return
    console.print(f"[bold]{path}[/] — type a question, empty line or Ctrl-D to quit")
    while True:
        try:
            q = console.input("[bold cyan]> [/]")
        except (EOFError, KeyboardInterrupt):
            break
        if not q.strip():
            break
        one(q)
