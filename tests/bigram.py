"""Hand-wired students for the laptop tests: real GGUFs that llama.cpp runs, whose greedy output is
a fixed R1 reply. Every layer is zeroed, so the next token depends only on the current one (a
bigram table written into the LM head): the tests know exactly what the student says, where its
thinking closes and how long it thinks. Llama-3's tokenizer: `</think>` is three tokens, and the
"\\n" after `<think>` differs from the one before `</think>`, so one successor per token holds."""

from __future__ import annotations

from pathlib import Path

ANSWER = "The answer is \\boxed{4}."
THINKING = "One two three"
WAIT_TAIL = " four\n</think>\n\n"  # what follows "\nWait": s1's extension closes again


def bigram_student(dest: Path, thinking_ids: list[int] | None = None, max_positions: int = 512) -> Path:
    """A 1-layer Llama whose greedy reply to any prompt ending in the `<think>` prefill is
    THINKING (or the tokens `thinking_ids`), then `</think>`, then ANSWER and <|eot_id|>."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.assets import llama3_tokenizer_dir
    from distill.train.templates import apply_to

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(llama3_tokenizer_dir())
    apply_to(tok, "llama3", prefill_think=True)

    def ids(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    prompt = ids(tok.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False,
                                         add_generation_prompt=True))
    thinking = thinking_ids if thinking_ids is not None else ids(THINKING)
    reply = thinking + ids("\n</think>\n\n" + ANSWER) + [tok.convert_tokens_to_ids("<|eot_id|>")]
    chains = [prompt[-1:] + reply, ids("\nWait" + WAIT_TAIL)[1:]]
    nxt: dict[int, int] = {}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            assert nxt.setdefault(a, b) == b, f"the script needs one successor per token ({tok.decode([a])!r})"
    hidden = 128 if len(nxt) > 256 else 64  # room for thousands of nearly orthogonal directions
    config = AutoConfig.for_model(
        "llama", vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.model.layers.named_parameters():
            if "norm" not in name:
                p.zero_()  # attention and MLP add nothing: the hidden state is the token's embedding
        emb = model.model.embed_tokens.weight
        head = torch.zeros_like(model.lm_head.weight)
        for a, b in nxt.items():
            head[b] += 50 * emb[a] / emb[a].norm()
        model.lm_head.weight.copy_(head)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def long_thinking_ids(n: int) -> list[int]:
    """`n` distinct single-token words (" alpha"-like), none of them used by the rest of the script."""
    from transformers import AutoTokenizer

    from distill.assets import llama3_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(llama3_tokenizer_dir())
    taken = set(tok.encode("\n</think>\n\n" + ANSWER + "\nWait" + WAIT_TAIL + THINKING, add_special_tokens=False))
    words = []
    for token, i in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]):
        if token.startswith("Ġ") and token[1:].isalpha() and token[1:].islower() and i not in taken:
            words.append(i)
            if len(words) == n:
                return words
    raise AssertionError(f"the vocab has fewer than {n} plain words")


def to_gguf(hf_dir: Path, out: Path) -> Path:
    from distill.export.gguf import convert

    convert(hf_dir, out, {"general.name": out.stem})
    return out
