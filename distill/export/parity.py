"""Proof that a GGUF is the student: tokenization identical to the HF tokenizer, F16 logits that
agree with the HF model, and perplexity on held-out text (llama.cpp in process, all logits).

    tokenizer_parity(hf_tokenizer, llm)  # {"identical": True, "texts": 9, "tokens": 412, "mismatches": []}
    logit_parity(hf_dir, llm, prompts)   # {"top1_agreement": 1.0, "max_abs_diff": 0.003, ...}
    perplexity(llm, texts)               # {"perplexity": 7.91, "tokens": 2048}
"""

from __future__ import annotations

import math
from pathlib import Path

# The text the GGUF tokenizer is known to get wrong: reasoning tags, LaTeX boxes, non-ASCII
# (accents, CJK, Cyrillic, emoji), digits, whitespace runs and the chat template's own tokens.
PARITY_CORPUS = [
    "<think>\nLet me add 17 and 25: 17 + 25 = 42.\n</think>\n\nThe answer is \\boxed{42}.",
    "<think></think>\\boxed{\\frac{3}{4}}",
    "Solve $x^2 - 5x + 6 = 0$. Thus $x \\in \\{2, 3\\}$ and \\boxed{2, 3}.",
    "naïve café — crème brûlée, Zürich, São Paulo, ½ + ¼ = ¾",
    "我想在apple工作1314151天～ нещо на Български 東京タワー 🦙🚀✅",
    "   leading spaces\t\ttabs\n\n\nnewlines   trailing   ",
    "3 33 333 3333 33333 3.14159 1,000,000 -7 x_{i+1}",
    "I've been 'told he's there, 'RE you sure? We'Ve a'lL",
]

DEFAULT_PROMPTS = [
    "What is 12 + 30?",
    "<think>\nThe train travels 60 km in 1.5 hours, so",
    "Résumé: the café served 3 crêpes. \\boxed{3}",
]


def tokenizer_parity(tok, llm, extra: list[str] | None = None) -> dict:
    """HF `tok` and llama.cpp `llm` must give the same ids for every text (special tokens parsed,
    no BOS added), so what the student saw in training is what it sees on the laptop."""
    texts = PARITY_CORPUS + list(extra or [])
    mismatches, n = [], 0
    for text in texts:
        hf = tok.encode(text, add_special_tokens=False)
        gg = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        n += len(hf)
        if hf != gg:
            first = next((i for i, (a, b) in enumerate(zip(hf, gg)) if a != b), min(len(hf), len(gg)))
            mismatches.append({"text": text[:80], "at": first, "hf": hf[first:first + 4], "gguf": gg[first:first + 4]})
    return {"identical": not mismatches, "texts": len(texts), "tokens": n, "mismatches": mismatches[:5]}


def gguf_logits(llm, ids: list[int]):
    """Logits for every position of `ids` (the Llama must be loaded with logits_all=True)."""
    import numpy as np

    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def logit_parity(model, tok, llm, prompts: list[str] | None = None) -> dict:
    """Top-1 agreement and max |difference| between HF fp32 logits and the GGUF's, per position."""
    import numpy as np
    import torch

    agree = total = 0
    max_diff = 0.0
    scale = 0.0
    for text in prompts or DEFAULT_PROMPTS:
        ids = tok.encode(text, add_special_tokens=False)
        with torch.inference_mode():
            hf = model(torch.tensor([ids])).logits[0].float().numpy()
        gg = gguf_logits(llm, ids)
        agree += int((hf.argmax(-1) == gg.argmax(-1)).sum())
        total += len(ids)
        max_diff = max(max_diff, float(np.abs(hf - gg).max()))
        scale = max(scale, float(np.abs(hf).max()))
    return {"top1_agreement": round(agree / max(total, 1), 4), "max_abs_diff": round(max_diff, 4),
            "max_abs_logit": round(scale, 3), "positions": total,
            "hf_dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}


def perplexity(llm, texts: list[str], max_tokens: int = 4096) -> dict:
    """exp(mean next-token NLL) over `texts`, each truncated to the context, `max_tokens` in all."""
    import numpy as np

    nll, count = 0.0, 0
    n_ctx = llm.n_ctx()
    for text in texts:
        if count >= max_tokens:
            break
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)[:n_ctx]
        if len(ids) < 2:
            continue
        logits = gguf_logits(llm, ids)[:-1].astype(np.float64)
        logz = logits.max(-1) + np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))
        target = logits[np.arange(len(ids) - 1), ids[1:]]
        nll += float((logz - target).sum())
        count += len(ids) - 1
    if not count:
        return {"perplexity": None, "tokens": 0}
    return {"perplexity": round(math.exp(nll / count), 4), "tokens": count}


def load_hf(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    # fp32 is the reference for small students; past ~2B parameters (8 GB of fp32) bf16 keeps the
    # check within a laptop's memory, at the price of a looser max |Δlogit|.
    weights = sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))
    dtype = torch.float32 if weights < 8e9 else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    return model, tok
