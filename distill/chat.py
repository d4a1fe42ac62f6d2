"""Laptop chat with an exported student through llama.cpp, streaming.

Thinking is shown dimmed or hidden behind a one-line "thought for N tokens"; `think_budget`
closes the thinking after N tokens and makes the model answer (s1's budget forcing).

    distill chat export/smol/smol-Q4_K_M.gguf --hide-thinking -p "What is 17 + 25?"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from distill.prompts import THINK_CLOSE, THINK_OPEN, user_prompt


@dataclass
class Reply:
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    budget_forced: bool


def _stream(llm, prompt: str, max_tokens: int, temperature: float, stop: list[str] | None = None) -> Iterator[str]:
    """One piece of text per generated token (the closing chunk that only carries finish_reason is dropped)."""
    for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=temperature, top_p=0.95,
                                       stream=True, stop=stop):
        choice = chunk["choices"][0]
        if choice["finish_reason"] is None or choice["text"]:
            yield choice["text"]


def reply(llm, question: str, prompt_text: str | None = None, think_budget: int | None = None,
          max_tokens: int = 1024, temperature: float = 0.6, on_text: Callable[[str, str], None] | None = None,
          ) -> Reply:
    """Answer one question; `on_text(part, text)` streams each piece as part "thinking" or "answer"."""
    from distill.llama import render_prompt

    emit = on_text or (lambda part, text: None)
    prompt = prompt_text or render_prompt(llm, [{"role": "user", "content": user_prompt(question)}])
    thinking, n_think = "", 0
    in_think = prompt.rstrip().endswith(THINK_OPEN)
    generated = ""
    budget_forced = False
    if in_think:
        # Each streamed chunk is one token; stop at the budget or at </think>.
        limit = think_budget if think_budget is not None else max_tokens
        for piece in _stream(llm, prompt, limit, temperature, stop=[THINK_CLOSE]):
            thinking += piece
            n_think += 1
            emit("thinking", piece)
        budget_forced = think_budget is not None and n_think >= think_budget
        generated = thinking + f"\n{THINK_CLOSE}\n\n"
    answer, n_answer = "", 0
    for piece in _stream(llm, prompt + generated, max(max_tokens - n_think, 16), temperature):
        answer += piece
        n_answer += 1
        emit("answer", piece)
    if not in_think and THINK_CLOSE in answer:  # the model opened its own <think>
        head, _, answer = answer.partition(THINK_CLOSE)
        thinking = head.replace(THINK_OPEN, "")
        n_think = len(llm.tokenize(thinking.encode(), add_bos=False, special=False))
    return Reply(thinking.strip(), answer.strip(), n_think, n_answer, budget_forced)


def interactive(path: str, show_thinking: bool, think_budget: int | None, question: str | None,
                max_tokens: int, temperature: float) -> None:
    from rich.console import Console

    from distill.llama import load_gguf

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
                  on_text=on_text)
        if r.budget_forced:
            console.print(f"\n[dim](thinking stopped at the budget of {think_budget} tokens)[/]", end="")
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
