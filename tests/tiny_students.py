"""Tiny real students that say something known: a 2-layer Llama built from a config with a real
tokenizer, trained here (a few hundred Adam steps on CPU) until greedy decoding reproduces its
training text. A backend must then score the known-correct completion as correct and the same
completion against another gold answer as wrong, and every backend must produce the same text."""

from __future__ import annotations

from pathlib import Path

from distill.sample.prompts import student_messages

QUESTION = "What is 1 + 1?"
CHATML_COMPLETION = "One and one make 2.\n</think>\n\nThe answer is \\boxed{2}.<|im_end|>"
# A base model's tokenizer ends text with <|end_of_text|> while the template ends turns with <|eot_id|>:
# this one goes on past its turn end and invents the next turn, whose answer is wrong (7).
LLAMA3_RUN_ON = ("One and one make 2.\n</think>\n\n\\boxed{2}<|eot_id|><|start_header_id|>user<|end_header_id|>"
                 "\n\nAnd 3 + 4?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<think>\n3 + 4 = 7."
                 "\n</think>\n\n\\boxed{7}<|end_of_text|>")


def fit(dest: Path, tokenizer_dir: Path, style: str, texts: list[tuple[str, str]], steps: int = 300,
        hidden: int = 64, eos: str | None = None, seed: int = 0, lr: float = 3e-3) -> Path:
    """Train a tiny Llama on (problem, completion) pairs rendered through the `style` template (the
    prompt tokenized as the eval backends tokenize it), save it with its tokenizer; `eos` overrides
    the saved tokenizer's EOS (a base model's)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.evaluate.prompts import HFPrompts
    from distill.train.templates import apply_to

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    apply_to(tok, style, prefill_think=True)
    side = HFPrompts(tok)
    rows = [side.encode(side.render(student_messages(p))) + tok(c, add_special_tokens=False)["input_ids"]
            for p, c in texts]
    config = AutoConfig.for_model(
        "llama", vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    mask = (labels != -100).long()
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is 3-4x faster than two on a shared machine
    try:
        for _ in range(steps):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            if loss.item() < 0.01:
                break
    finally:
        torch.set_num_threads(threads)
    model.eval()
    if eos is not None:
        tok.eos_token = eos
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.eos_token_id
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest
