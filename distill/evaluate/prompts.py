"""How a conversation becomes the token ids a model sees: rendered once with the chat template,
tokenized once (special tokens parsed, a single BOS), and the ids passed on as they are.

Passing text on lets the runtime tokenize it again and add its own BOS: a Llama-3 template writes
`<|begin_of_text|>` itself, and llama.cpp's `create_completion` (and llama-server, for a text
prompt) then puts a second one in front. Every backend here sends ids instead.

    side = HFPrompts(tokenizer)                # or GGUFPrompts(llm) for a .gguf file
    ids = side.encode(side.render(messages))   # exactly one BOS where the model wants one
"""

from __future__ import annotations

from pathlib import Path


def single_bos(ids: list[int], bos: int | None, wants_bos: bool) -> list[int]:
    """`ids` with exactly one leading BOS when the model wants one, untouched otherwise."""
    if bos is None or bos < 0:
        return ids
    body = ids
    while body[:1] == [bos]:
        body = body[1:]
    return [bos, *body] if wants_bos or ids[:1] == [bos] else body


class HFPrompts:
    """A transformers tokenizer: its chat template (or the one given) renders, it encodes."""

    def __init__(self, tok, chat_template: str | None = None):
        self.tok = tok
        if chat_template:
            tok.chat_template = chat_template
        probe = tok("a")["input_ids"]  # does this tokenizer put BOS in front by itself?
        self.wants_bos = tok.bos_token_id is not None and probe[:1] == [tok.bos_token_id]

    @classmethod
    def load(cls, ref: str | Path, chat_template: str | None = None) -> HFPrompts:
        from transformers import AutoTokenizer

        from distill.assets import hf_folder

        return cls(AutoTokenizer.from_pretrained(hf_folder(str(ref))), chat_template)

    def render(self, conversation: list[dict]) -> str:
        return self.tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def encode(self, prompt: str) -> list[int]:
        ids = self.tok(prompt, add_special_tokens=False)["input_ids"]
        return single_bos(ids, self.tok.bos_token_id, self.wants_bos)

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def bos_text(self) -> str:
        return self.tok.bos_token or ""

    def token_id(self, token: str) -> int | None:
        tid = self.tok.convert_tokens_to_ids(token)
        return None if tid is None or tid == self.tok.unk_token_id else tid


class GGUFPrompts:
    """A GGUF's own tokenizer and embedded template (or the one given), through llama-cpp-python.
    `vocab_only` llms load in a moment: the served path uses one beside the server."""

    def __init__(self, llm, chat_template: str | None = None):
        self.llm = llm
        if chat_template:
            from distill.train.templates import inference_template

            chat_template = inference_template(chat_template)
        self.chat_template = chat_template
        self.wants_bos = bool(llm._model.add_bos_token())

    @classmethod
    def load(cls, gguf: str | Path, chat_template: str | None = None) -> GGUFPrompts:
        from distill.llamacpp import load_gguf

        return cls(load_gguf(gguf, n_ctx=256, vocab_only=True), chat_template)

    def render(self, conversation: list[dict]) -> str:
        from distill.llamacpp import render_prompt

        return render_prompt(self.llm, conversation, self.chat_template)

    def encode(self, prompt: str) -> list[int]:
        ids = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return single_bos(ids, self.llm.token_bos(), self.wants_bos)

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def bos_text(self) -> str:
        bos = self.llm.token_bos()
        return self.llm.detokenize([bos], special=True).decode("utf-8", "ignore") if bos >= 0 else ""

    def token_id(self, token: str) -> int | None:
        ids = self.llm.tokenize(token.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None
