"""The chat page of `distill serve`, a Streamlit script (Streamlit reruns it on every message).

It talks to llama.cpp's OpenAI-compatible server, which returns the reasoning apart from the
answer (`reasoning_content`): the thinking streams into a status box that folds away once the
answer starts, and earlier replies keep theirs folded. Earlier turns go back to the server as
answers only. Each question gets the R1 instruction the student was trained with, unless the
sidebar turns it off.

    streamlit run distill/laptop/web.py -- --api http://127.0.0.1:8080/v1 --model smol
"""

from __future__ import annotations

import argparse
import json
import sys


def _args():
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True)
    p.add_argument("--model", default="student")
    p.add_argument("--temperature", type=float, default=0.6)
    return p.parse_args(sys.argv[1:])


def stream_reply(api: str, model: str, messages: list[dict], temperature: float, think: bool, budget: int):
    """(part, text) pieces of the server's streamed reply, part "thinking" or "answer"."""
    import httpx

    body = {"model": model, "messages": messages, "stream": True, "temperature": temperature, "top_p": 0.95}
    if not think:
        body["chat_template_kwargs"] = {"enable_thinking": False}
    elif budget:
        body["thinking_budget_tokens"] = budget
    with httpx.stream("POST", f"{api}/chat/completions", json=body, timeout=httpx.Timeout(30, read=None)) as r:
        if r.status_code != 200:
            r.read()
            raise RuntimeError(f"the server answered HTTP {r.status_code}: {r.text[:300]}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[len("data: "):]).get("choices", []):
                delta = choice.get("delta") or {}
                if delta.get("reasoning_content"):
                    yield "thinking", delta["reasoning_content"]
                if delta.get("content"):
                    yield "answer", delta["content"]


def _folded_label(thinking: str) -> str:
    return f"Thought ({len(thinking.split())} words)"


def main() -> None:
    import streamlit as st

    from distill.r1 import user_prompt

    args = _args()
    st.set_page_config(page_title=args.model, page_icon=":thought_balloon:")
    st.title(args.model)
    st.caption(f"a distill student on llama.cpp · OpenAI-compatible API at {args.api}")
    history = st.session_state.setdefault("history", [])
    with st.sidebar:
        think = st.toggle("Think before answering", value=True)
        budget = st.number_input("Thinking budget in tokens (0: none)", min_value=0, value=0, step=256)
        r1 = st.toggle("Add the R1 instruction (reason step by step, box the answer)", value=True)
        if st.button("New conversation"):
            history.clear()

    for m in history:
        with st.chat_message(m["role"]):
            if m.get("thinking"):
                with st.expander(_folded_label(m["thinking"]), expanded=False):
                    st.markdown(m["thinking"])
            st.markdown(m["shown"])

    question = st.chat_input("Ask the student")
    if not question:
        return
    history.append({"role": "user", "content": user_prompt(question) if r1 else question, "shown": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        status = st.status("Thinking…", expanded=True) if think else None
        thinking_box = status.empty() if status else None
        answer_box = st.empty()
        thinking = answer = ""
        sent = [{"role": m["role"], "content": m["content"]} for m in history]  # answers only, no thinking
        try:
            for part, text in stream_reply(args.api, args.model, sent, args.temperature, think, int(budget)):
                if part == "thinking" and thinking_box is not None:
                    thinking += text
                    thinking_box.markdown(thinking)
                elif part == "answer":
                    if status is not None and not answer:
                        status.update(label=_folded_label(thinking), state="complete", expanded=False)
                    answer += text
                    answer_box.markdown(answer)
        except Exception as e:  # the server went away: say so on the page, keep the conversation
            st.error(f"no reply from {args.api}: {e}")
        if status is not None:
            status.update(label=_folded_label(thinking), state="complete", expanded=False)
    history.append({"role": "assistant", "content": answer.strip(), "shown": answer, "thinking": thinking.strip()})


if __name__ == "__main__":
    main()
