"""The model card (`export/<name>/README.md`): what the export is, how each file measured against
F16 and the HF model, and how to run it. Everything in it comes from the manifest.

    write_text(out_dir / "README.md", model_card(manifest))
"""

from __future__ import annotations


def _fmt(v, spec: str = "") -> str:
    return "–" if v is None else format(v, spec)


def _pm(e: dict, key: str, spec: str) -> str:
    if e.get(key) is None:
        return "–"
    se = e.get(key + "_se")
    return format(e[key], spec) + (f" ± {format(se, spec.lstrip('+'))}" if se is not None else "")


def quality_rows(manifest: dict) -> list[str]:
    rows = []
    for e in manifest["files"]:
        rows.append(
            f"| `{e['file']}` | {e['quant']} | {e['bytes'] / 2**20:.1f} MiB | {e.get('bits_per_weight', '–')} | "
            f"{'yes' if e.get('imatrix') else 'no'} | "
            f"{'identical' if e['tokenizer_parity']['identical'] else 'DIFFERS'} | {_pm(e, 'kld', '.4f')} | "
            f"{_fmt(e.get('top1_agreement'), '.1%')} | {_fmt(e.get('perplexity'), '.3f')} | "
            f"{_pm(e, 'pass@1', '.3f')} | {_pm(e, 'pass@1_vs_f16', '+.3f')} | {e.get('tokens_per_s', '–')} | {len(e.get('fallback_tensors', []))} | "
            f"`{e['sha256'][:12]}…` |")
    return rows


def model_card(manifest: dict) -> str:
    name = manifest["name"]
    q4 = next((e["file"] for e in manifest["files"] if e["quant"] == "Q4_K_M"), manifest["files"][-1]["file"])
    f16 = manifest["files"][0]
    lp = f16.get("logit_parity") or {}
    kld = manifest.get("kld") or {}
    im = manifest.get("imatrix") or {}
    compare = im.get("comparison") or {}
    imatrix_line = (f"Q4_K_M's KL divergence to F16 is {compare['with']:.4f} with the importance matrix and "
                    f"{compare['without']:.4f} without it." if compare else "No importance matrix was used.")
    return f"""---
license: {manifest.get('license', 'apache-2.0')}
base_model: {manifest['base_model']}
tags: [gguf, reasoning, distill]
---
# {name}

A small reasoning model distilled by distill from `{manifest['base_model']}`
(recipe `{manifest['recipe']['name']}`, sha256 `{manifest['recipe']['sha256'][:16]}…`).
It thinks inside `<think> … </think>` and puts its final answer in `\\boxed{{}}`.
The chat template (with the `<think>` prefill{'' if manifest.get('prefill_think', True) else ' off'}) and the stop
token `{manifest.get('stop_token', '')}` are embedded in every file.

How each file was proven (llama.cpp's own tools): tokenization identical to the HF tokenizer on a
corpus with `<think>`, `</think>`, `\\boxed{{}}` and non-ASCII text; F16 logits against the HF model on
{lp.get('texts', '?')} held-out conversations ({lp.get('positions', '?')} positions: top-1 agreement
{_fmt(lp.get('top1_agreement'), '.2%')}, mean KL divergence {_fmt(lp.get('kld'), '.2e')}); KL divergence and
top-1 agreement of each file against F16 (`llama-perplexity --kl-divergence`) on {kld.get('scored_tokens', '?')}
tokens of {kld.get('source', 'held-out conversations')}; F16's own row is the noise floor. {imatrix_line}
pass@1 ± standard error on the eval problems through llama.cpp's server, and each quant's pass@1 minus
F16's on the same problems ± the paired standard error (per-problem differences: far tighter than the two
files' own errors); fallback = tensors llama.cpp stored in another type because their rows do not fit the
quant's block.

| file | quant | size | bits/weight | imatrix | tokenization | KLD vs F16 | same top-1 | perplexity | pass@1 | vs F16 | tokens/s | fallback tensors | sha256 |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(quality_rows(manifest))}

## Run it
- distill: `distill chat {q4}` (`--hide-thinking`, `--think-budget 256`)
- llama.cpp: `llama-cli -m {q4} -cnv --temp 0.6` (template and stop token come from the file);
  `llama-server -m {q4} --jinja` for an OpenAI-compatible endpoint.
- Ollama: `ollama create {name} -f Modelfile && ollama run {name}`; from a hub repo,
  `ollama run hf.co/ORG/REPO:Q4_K_M`.
- LM Studio: load the `.gguf`; the embedded template is used as is. Set temperature 0.6 and keep
  `<think>` visible or collapse it in the UI's reasoning settings.
"""
