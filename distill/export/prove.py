"""Each exported file proven before it is listed: it loads in llama.cpp (a corrupted or truncated
file does not), its tokenizer is the HF one, it answers through its embedded template with a single
BOS and stops; then the export is judged against the recipe's tolerances.

    entry = prove_file(Path("smol-Q8_0.gguf"), "Q8_0", tok)
    failures = judge(entries, f16_logits, cfg)   # [] or ["Q4_0: KL divergence 0.31 > export.max_kld 0.2", ...]
"""

from __future__ import annotations

import time
from pathlib import Path

from distill.errors import DistillError
from distill.export import parity
from distill.export.quants import tensor_census
from distill.records import sha256_file

SMOKE_QUESTION = "What is 12 + 30?"


def load_checked(path: Path, **kwargs):
    """llama.cpp's loader as the gate: a file it refuses is named as corrupted, not a traceback."""
    from distill.llamacpp import load_gguf

    try:
        return load_gguf(path, **kwargs)
    except ValueError as e:
        raise DistillError(f"{Path(path).name} does not load in llama.cpp ({e}): the file is corrupted or "
                           "truncated; delete it and export again") from None


def smoke_test(path: Path, max_tokens: int = 48, n_threads: int | None = None) -> dict:
    """Ask one question through the file's embedded chat template, as a user would, with the prompt
    tokenized once (one BOS, counted by llama.cpp itself); tokens/s of greedy generation after a
    short warm-up (the first call pays for page-ins)."""
    from distill.evaluate.prompts import GGUFPrompts

    llm = load_checked(path, n_ctx=512, n_threads=n_threads)
    try:
        side = GGUFPrompts(llm)
        ids = side.encode(side.render([{"role": "user", "content": SMOKE_QUESTION}]))
        llm.create_completion(ids, max_tokens=4, temperature=0.0)
        llm.reset()
        start = time.monotonic()
        res = llm.create_completion(ids, max_tokens=max_tokens, temperature=0.0)
        wall = time.monotonic() - start
        bos = llm.token_bos()
    finally:
        llm.close()
    n = res["usage"]["completion_tokens"]
    return {"answer": res["choices"][0]["text"][:200], "tokens_per_s": round(n / wall, 1),
            "stopped": res["choices"][0]["finish_reason"] == "stop",
            "prompt_bos": ids[:2].count(bos) if bos >= 0 else 0, "prompt_tokens": res["usage"]["prompt_tokens"],
            "prompt_ids": len(ids)}


def prove_file(path: Path, quant: str, tok, extra_texts: list[str] | None = None) -> dict:
    """Size, sha256, tensor census, tokenizer parity and the smoke test of one file."""
    entry = {"file": path.name, "quant": quant, "bytes": path.stat().st_size, "sha256": sha256_file(path),
             **tensor_census(path)}
    llm = load_checked(path, n_ctx=512, vocab_only=True)
    try:
        entry["tokenizer_parity"] = parity.tokenizer_parity(tok, llm, extra_texts)
    finally:
        llm.close()
    return entry | smoke_test(path)


def f16_logits(path: Path, model, tok, texts: list[str], n_ctx: int) -> dict:
    llm = load_checked(path, n_ctx=n_ctx, logits_all=True)
    try:
        return parity.logit_parity(model, tok, llm, texts, max_tokens=n_ctx * 2)
    finally:
        llm.close()


def judge(entries: list[dict], f16: dict, cfg) -> list[str]:
    """What makes the export unfit to publish, each naming the setting that judged it."""
    failures = []
    for e in entries:
        tp = e["tokenizer_parity"]
        if not tp["identical"]:
            failures.append(f"{e['file']}: tokenization differs from the HF tokenizer, e.g. {tp['mismatches'][0]}")
        if e["prompt_bos"] > 1 or e["prompt_tokens"] != e["prompt_ids"]:
            failures.append(f"{e['file']}: the prompt reached llama.cpp with {e['prompt_tokens']} tokens for "
                            f"{e['prompt_ids']} ids ({e['prompt_bos']} BOS): a second BOS was added")
        limit = cfg.max_kld.get(e["quant"])
        if limit is not None and e.get("kld") is not None and not e["kld"] <= limit:  # NaN fails too
            failures.append(f"{e['file']}: KL divergence to F16 {e['kld']:.4f} > export.max_kld.{e['quant']} {limit}")
    # Written so that NaN (logits of a file whose weights are garbage) fails each check.
    if not f16["top1_agreement"] >= cfg.f16_min_top1:
        failures.append(f"F16 logits: top-1 agreement with the HF model {f16['top1_agreement']:.2%} < "
                        f"export.f16_min_top1 {cfg.f16_min_top1:.2%}")
    if not f16["kld"] <= cfg.f16_max_kld:
        failures.append(f"F16 logits: KL divergence to the HF model {f16['kld']:.2e} > export.f16_max_kld "
                        f"{cfg.f16_max_kld:.2e}")
    return failures
