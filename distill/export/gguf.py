"""Export: the student as GGUF F16 plus a quant ladder, each file proven before it is listed.

Conversion runs llama.cpp's own `convert_hf_to_gguf.py` (the version matching the installed
llama-cpp-python) as a subprocess; quantization is `llama_cpp.llama_model_quantize`. A PEFT
adapter folder is merged into its base first. Every file is then loaded by llama.cpp and
measured: tokenization against the HF tokenizer, F16 logits against the HF model, perplexity on
held-out text, pass@1 on eval problems, size, bits per weight and tokens/s; the numbers go into
`manifest.json` and the model card; the Ollama `Modelfile` sits beside them.

    manifest = run(Path("data/runs/smol/student"), Path("export/smol"), "smol", ["Q8_0", "Q4_K_M"],
                   base_model="HuggingFaceTB/SmolLM2-135M-Instruct", recipe_name="smol", recipe_sha256=sha)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.progress import Progress

from distill.assets import ensure_converter
from distill.errors import DistillError
from distill.export.ollama import write_files as write_ollama_files
from distill.export.quants import quantize, tensor_census
from distill.records import sha256_file, write_json, write_text
from distill.train.templates import inference_template

SMOKE_QUESTION = "What is 12 + 30?"

# Run the converter with one change: name the pre-tokenizer from what the HF tokenizer really does
# where its hash does not settle it. (1) transformers 5 rebuilds the pre-tokenizer of a Qwen2 folder
# from Qwen2's regex whatever tokenizer.json says, so a Qwen2 student with another vocab hashes to
# nothing known: its Split regex names it. (2) A tokenizer that is a bare GPT-2 ByteLevel regex
# (SmolLM2's as transformers rebuilds it from a GGUF, without the original digit split) hashes as
# "smollm", whose llama.cpp regex also isolates every \p{N} (½ ² ³): "gpt-2" is what it does.
# The tokenizer parity check on every exported file proves the choice.
_CONVERT_WRAPPER = r'''
import json, logging, runpy, sys
conv = sys.argv.pop(1)
sys.path.insert(0, conv)
import conversion.base as base
KNOWN = json.loads(sys.argv.pop(1))
orig = base.TextModel.get_vocab_base_pre
def from_structure(tokenizer):
    try:
        pre = json.loads(tokenizer.backend_tokenizer.pre_tokenizer.__getstate__())
    except Exception:
        return None
    if pre.get("type") == "ByteLevel" and pre.get("use_regex"):
        return "gpt-2"
    parts = pre.get("pretokenizers", [pre])
    regexes = [p.get("pattern", {}).get("Regex") for p in parts if p.get("type") == "Split"]
    return next((name for name, regex in KNOWN.items() if regexes and regexes[0] == regex), None)
def get_vocab_base_pre(self, tokenizer):
    named = from_structure(tokenizer)
    try:
        res = orig(self, tokenizer)
    except NotImplementedError:
        if named is None:
            raise
        res = None
    if named and res != named and (res is None or named == "gpt-2"):
        logging.warning("pre-tokenizer %s (by structure) instead of %s (by hash)", named, res)
        return named
    return res
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv[0] = conv + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
'''
# Pre-tokenizer regexes llama.cpp implements under these names (llama-vocab.cpp).
_PRE_REGEXES = {
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "llama-bpe": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}


def merge_adapter(adapter_dir: Path, dest: Path) -> Path:
    """A PEFT (LoRA) adapter folder merged into its base model, saved as a plain HF folder."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.assets import hf_folder

    base_ref = PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
    try:
        base = AutoModelForCausalLM.from_pretrained(hf_folder(base_ref), dtype=torch.float32)
    except OSError as e:
        raise DistillError(f"the adapter in {adapter_dir} needs its base model {base_ref!r}, which did not load "
                           f"({e}); point base_model_name_or_path in adapter_config.json at a local folder") from None
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    has_tok = (adapter_dir / "tokenizer_config.json").exists()
    tok = AutoTokenizer.from_pretrained(adapter_dir if has_tok else hf_folder(base_ref))
    merged.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def _staged_folder(model_dir: Path, tmp: Path, license: str) -> Path:
    """A view of `model_dir` whose chat template has no `{% generation %}` markers (llama.cpp
    renders templates but does not know that training-only tag), with a model card whose front
    matter gives the converter `general.license` (its override file has no key for it)."""
    stage = tmp / "model"
    stage.mkdir()
    (stage / "README.md").write_text(f"---\nlicense: {license}\n---\n")
    for f in model_dir.iterdir():
        if f.is_file() and f.name not in ("chat_template.jinja", "tokenizer_config.json", "README.md"):
            os.symlink(f.resolve(), stage / f.name)
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    template = cfg.pop("chat_template", None)
    jinja = model_dir / "chat_template.jinja"
    if jinja.exists():
        template = jinja.read_text()
    if not template:
        raise DistillError(f"{model_dir} has no chat template; train with `distill train` or set one")
    cfg["chat_template"] = inference_template(template)
    (stage / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    return stage


def convert(model_dir: Path, out_file: Path, metadata: dict, license: str = "apache-2.0") -> None:
    """HF folder -> GGUF F16 with llama.cpp's converter."""
    conv = ensure_converter()
    with tempfile.TemporaryDirectory() as tmp:
        stage = _staged_folder(model_dir, Path(tmp), license)
        meta = Path(tmp) / "metadata.json"
        meta.write_text(json.dumps(metadata))
        part = out_file.with_suffix(".gguf.part")
        cmd = [sys.executable, "-c", _CONVERT_WRAPPER, str(conv), json.dumps(_PRE_REGEXES), str(stage),
               "--outfile", str(part), "--outtype", "f16", "--metadata", str(meta)]
        env = {**os.environ, "PYTHONPATH": str(conv / "gguf-py")}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            part.unlink(missing_ok=True)
            tail = proc.stderr.strip()[-1500:]
            hint = ""
            if "pre-tokenizer was not recognized" in tail:
                hint = ("\nllama.cpp's converter does not know this tokenizer's pre-tokenizer (its hash is not in "
                        "get_vocab_base_pre and its split regex is not Qwen2's or Llama-3's). Train the student "
                        "with its base model's own tokenizer (SmolLM2, Qwen2/2.5, Llama-3 are known); with "
                        "transformers 5 a Qwen2 model always gets Qwen2's pre-tokenizer.")
            raise DistillError(f"GGUF conversion of {model_dir} failed:\n{tail}{hint}")
        os.replace(part, out_file)


def smoke_test(path: Path, max_tokens: int = 48, n_threads: int | None = None) -> dict:
    """Load the file as a user would, ask one question through its embedded chat template;
    tokens/s of greedy generation after a short warm-up (the first call pays for page-ins)."""
    from distill.llamacpp import load_gguf, render_prompt

    llm = load_gguf(path, n_ctx=512, n_threads=n_threads)
    prompt = render_prompt(llm, [{"role": "user", "content": SMOKE_QUESTION}])
    llm.create_completion(prompt, max_tokens=4, temperature=0.0)
    llm.reset()
    start = time.monotonic()
    res = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
    wall = time.monotonic() - start
    n = res["usage"]["completion_tokens"]
    return {"loads": True, "answer": res["choices"][0]["text"][:200], "tokens_per_s": round(n / wall, 1),
            "stopped": res["choices"][0]["finish_reason"] == "stop"}


def default_texts(template_prompt) -> list[str]:
    """Held-out text for perplexity when no traces are given: the R1-form worked examples."""
    from distill.r1 import user_prompt
    from distill.sample.prompts import FEW_SHOT

    return [template_prompt(user_prompt(q)) + a.removeprefix("<think>\n") for q, a in FEW_SHOT]


def prove(path: Path, quant: str, hf, texts: list[str], eval_problems=None, eval_cfg=None) -> dict:
    """Load one GGUF with llama.cpp and measure it (see the module docstring)."""
    from distill.export import parity
    from distill.llamacpp import load_gguf

    llm = load_gguf(path, n_ctx=1024, logits_all=True)
    entry = {"quant": quant, "bytes": path.stat().st_size, "sha256": sha256_file(path), **tensor_census(path)}
    model, tok = hf
    entry["tokenizer_parity"] = parity.tokenizer_parity(tok, llm, texts[:2])
    if quant == "F16":
        entry["logit_parity"] = parity.logit_parity(model, tok, llm)
    entry.update(parity.perplexity(llm, texts))
    llm.close()
    entry.update(smoke_test(path))
    if eval_problems:
        from distill.evaluate import harness as evaluate

        res = evaluate.run(str(path), eval_problems, eval_cfg, show_progress=False)
        entry["pass@1"] = res["pass@1"]
        entry["eval_problems"] = res["problems"]
    return entry


def run(model_dir: Path, out_dir: Path, name: str, quants: list[str], base_model: str,
        recipe_name: str, recipe_sha256: str, datasets: list[str] | None = None, license: str = "apache-2.0",
        stop_token: str | None = None, texts: list[str] | None = None, traces: Path | None = None,
        n_traces: int = 16, eval_problems=None, eval_cfg=None, extra_quality: dict | None = None) -> dict:
    """Write `<name>-F16.gguf` and `<name>-<QUANT>.gguf` into `out_dir` with manifest, Modelfile, card.
    Perplexity text: `texts`, else the last `n_traces` of the accepted `traces` JSONL rendered as
    training conversations, else the worked examples; `eval_problems`+`eval_cfg`: pass@1 per file."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    is_adapter = (model_dir / "adapter_config.json").exists()
    if not (model_dir / "config.json").exists() and not is_adapter:
        raise DistillError(f"{model_dir} is not a trained student folder (no config.json or adapter_config.json); "
                           "run `distill train` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".merge-") as tmp:
        if is_adapter:
            model_dir = merge_adapter(model_dir, Path(tmp) / "merged")
        return _export(model_dir, out_dir, name, quants, base_model, recipe_name, recipe_sha256, datasets,
                       license, stop_token, texts, traces, n_traces, eval_problems, eval_cfg, extra_quality,
                       merged=is_adapter)


def trace_texts(traces: Path, n: int, tok) -> list[str]:
    """The last `n` accepted traces as the exact text the student was trained on."""
    from distill.records import Trace, read_records
    from distill.train.sft import training_messages

    good = [t for t in read_records(traces, Trace) if isinstance(t, Trace)][-n:]
    return [tok.apply_chat_template(training_messages(t), tokenize=False) for t in good]


def _export(model_dir, out_dir, name, quants, base_model, recipe_name, recipe_sha256, datasets, license,
            stop_token, texts, traces, n_traces, eval_problems, eval_cfg, extra_quality, merged) -> dict:
    from distill.export import parity

    metadata = {"general.name": name, "general.basename": name,
                "general.description": f"Reasoning student distilled with distill (recipe {recipe_name}, "
                                       f"sha256 {recipe_sha256})",
                "general.base_models": [{"name": base_model}],
                "general.datasets": [{"name": d} for d in (datasets or [])],
                "general.tags": ["reasoning", "distill", f"recipe-sha256:{recipe_sha256[:16]}"]}
    hf = parity.load_hf(model_dir)
    tok = hf[1]
    stop_token = stop_token or tok.eos_token

    def template_prompt(q: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)

    prefill = template_prompt("hi").endswith("<think>\n")

    source = "given texts"
    if not texts and traces and Path(traces).exists():
        texts, source = trace_texts(Path(traces), n_traces, tok), f"last {n_traces} accepted traces of {traces}"
    if not texts:
        texts, source = default_texts(template_prompt), "the worked R1 examples (no traces given)"
    f16 = out_dir / f"{name}-F16.gguf"
    files = [("F16", f16)]
    reports: dict[str, dict] = {}
    ladder = [q for q in quants if q != "F16"]
    with Progress() as progress:
        task = progress.add_task(f"export {name}", total=1 + len(ladder) * 2 + 1)
        convert(model_dir, f16, metadata, license)
        progress.advance(task)
        for q in ladder:
            dst = out_dir / f"{name}-{q}.gguf"
            reports[q] = quantize(f16, dst, q)
            files.append((q, dst))
            progress.advance(task)
        entries = []
        for quant, path in files:
            entry = {"file": path.name, **prove(path, quant, hf, texts, eval_problems, eval_cfg)}
            if quant in reports:
                entry["fallback_tensors"] = reports[quant]["fallback"]
            entry.update((extra_quality or {}).get(quant, {}))
            entries.append(entry)
            progress.advance(task)
    base_ppl = entries[0].get("perplexity")
    for e in entries:
        if base_ppl and e.get("perplexity"):
            e["perplexity_ratio_to_f16"] = round(e["perplexity"] / base_ppl, 4)
    bad = [e["file"] for e in entries if not e["tokenizer_parity"]["identical"]]
    if bad:
        # Recorded and shown, not fatal: the export is still usable, and the card says where it differs.
        from rich.console import Console

        Console(stderr=True).print(
            f"[yellow]warning:[/] GGUF tokenization differs from the HF tokenizer in {bad}: "
            f"{entries[0]['tokenizer_parity']['mismatches'][:2]} (see manifest.json)", highlight=False)
    manifest = {"name": name, "base_model": base_model, "license": license, "datasets": datasets or [],
                "recipe": {"name": recipe_name, "sha256": recipe_sha256},
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "merged_adapter": merged, "stop_token": stop_token, "prefill_think": prefill,
                "imatrix": None,  # see the README: llama-cpp-python computes no importance matrix
                "perplexity_texts": len(texts), "perplexity_source": source, "files": entries}
    default = next((e["file"] for e in entries if e["quant"] == "Q4_K_M"), entries[-1]["file"])
    write_ollama_files(out_dir, out_dir / default, stop_token, prefill)
    write_text(out_dir / "README.md", model_card(manifest))
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def _fmt(v, spec: str = "") -> str:
    return "–" if v is None else format(v, spec)


def model_card(manifest: dict) -> str:
    rows = []
    for e in manifest["files"]:
        lp = e.get("logit_parity") or {}
        logits = f"top-1 {lp['top1_agreement']:.0%}, max Δ {lp['max_abs_diff']}" if lp else "–"
        rows.append(
            f"| `{e['file']}` | {e['quant']} | {e['bytes'] / 2**20:.1f} MiB | {e.get('bits_per_weight', '–')} | "
            f"{'yes' if e.get('loads') else 'no'} | {'identical' if e['tokenizer_parity']['identical'] else 'DIFFERS'} | "
            f"{logits} | {_fmt(e.get('perplexity'))} ({_fmt(e.get('perplexity_ratio_to_f16'), '.3f')}×) | "
            f"{_fmt(e.get('pass@1'))} | {e.get('tokens_per_s', '–')} | {len(e.get('fallback_tensors', []))} | "
            f"`{e['sha256'][:12]}…` |")
    name = manifest["name"]
    q4 = next((e["file"] for e in manifest["files"] if e["quant"] == "Q4_K_M"), manifest["files"][-1]["file"])
    table = "\n".join(rows)
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

Measured on this export (llama.cpp in process, CPU): tokenization against the HF tokenizer on a
corpus with `<think>`, `</think>`, `\\boxed{{}}` and non-ASCII text; F16 logits against the HF model;
perplexity on {manifest.get('perplexity_texts', '?')} held-out R1-form texts (ratio to F16); pass@1 on the eval
split; fallback = tensors llama.cpp stored in another type because their rows do not fit the quant's block.

| file | quant | size | bits/weight | llama.cpp loads | tokenization | logits vs HF | perplexity (× F16) | pass@1 | tokens/s | fallback tensors | sha256 |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{table}

## Run it
- distill: `distill chat {q4}` (`--hide-thinking`, `--think-budget 256`)
- llama.cpp: `llama-cli -m {q4} -cnv --temp 0.6` (template and stop token come from the file);
  `llama-server -m {q4} --jinja` for an OpenAI-compatible endpoint.
- Ollama: `ollama create {name} -f Modelfile && ollama run {name}`; from a hub repo,
  `ollama run hf.co/ORG/REPO:Q4_K_M`.
- LM Studio: load the `.gguf`; the embedded template is used as is. Set temperature 0.6 and keep
  `<think>` visible or collapse it in the UI's reasoning settings.
"""
