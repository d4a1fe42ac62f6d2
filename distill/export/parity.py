"""Proof that a GGUF is the student: tokenization identical to the HF tokenizer, and F16 logits that
agree with the HF model over held-out conversations (llama.cpp in process, the same token ids fed
to both, one BOS), judged against the recipe's tolerances.

    tokenizer_parity(hf_tokenizer, llm)            # {"identical": True, "texts": 9, "tokens": 412, "mismatches": []}
    logit_parity(model, tok, llm, conversations)   # {"top1_agreement": 1.0, "kld": 2e-6, "max_abs_diff": 0.003, ...}
"""

from __future__ import annotations

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


def _log_softmax(x):
    import numpy as np

    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def logit_parity(model, tok, llm, texts: list[str], max_tokens: int = 2048) -> dict:
    """HF logits against the GGUF's for every position of each text (tokenized once by `tok`, one
    BOS, then fed to both): top-1 agreement, mean KL(HF || GGUF) and max |difference|. Texts are cut
    to the GGUF's context, `max_tokens` positions in all."""
    import numpy as np
    import torch

    from distill.evaluate.prompts import HFPrompts

    side = HFPrompts(tok)
    agree = total = 0
    kld_sum, max_diff, scale = 0.0, 0.0, 0.0
    for text in texts:
        if total >= max_tokens:
            break
        ids = side.encode(text)[: min(llm.n_ctx(), max_tokens - total)]
        if len(ids) < 2:
            continue
        with torch.inference_mode():
            hf = model(torch.tensor([ids])).logits[0].float().numpy()
        gg = gguf_logits(llm, ids)
        p_hf, p_gg = _log_softmax(hf), _log_softmax(gg)
        kld_sum += float((np.exp(p_hf) * (p_hf - p_gg)).sum())
        agree += int((hf.argmax(-1) == gg.argmax(-1)).sum())
        total += len(ids)
        max_diff = max(max_diff, float(np.abs(hf - gg).max()))
        scale = max(scale, float(np.abs(hf).max()))
    return {"top1_agreement": round(agree / max(total, 1), 4), "kld": round(kld_sum / max(total, 1), 8),
            "max_abs_diff": round(max_diff, 4), "max_abs_logit": round(scale, 3), "positions": total,
            "texts": len(texts), "hf_dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}


def load_hf(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    # fp32 is the reference for small students; past ~2B parameters (8 GB of fp32) bf16 keeps the
    # check within a laptop's memory, at the price of a looser agreement.
    weights = sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))
    dtype = torch.float32 if weights < 8e9 else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    return model, tok
