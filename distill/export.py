"""Export: the student as GGUF F16 plus quantized files, with manifest, Modelfile and model card.

Conversion runs llama.cpp's own `convert_hf_to_gguf.py` (the version matching the installed
llama-cpp-python) as a subprocess; quantization is `llama_cpp.llama_model_quantize`. Each file
is then loaded by llama.cpp and asked a question before it is listed in the manifest.

    manifest = run(Path("data/runs/smol/student"), Path("export/smol"), name="smol", recipe=recipe)
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from distill.assets import ensure_converter
from distill.errors import DistillError
from distill.quants import QUANT_TYPES
from distill.records import read_json, write_json, write_text
from distill.templates import inference_template

SMOKE_QUESTION = "What is 12 + 30?"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        cmd = [sys.executable, str(conv / "convert_hf_to_gguf.py"), str(stage), "--outfile", str(part),
               "--outtype", "f16", "--metadata", str(meta)]
        env = {**os.environ, "PYTHONPATH": str(conv / "gguf-py")}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip()[-1500:]
            hint = ""
            if "pre-tokenizer was not recognized" in tail:
                hint = ("\nllama.cpp's converter does not know this tokenizer's pre-tokenizer: export a student "
                        "whose tokenizer it recognises (SmolLM2, Qwen2, Llama-3 tokenizers are known).")
            raise DistillError(f"GGUF conversion of {model_dir} failed:\n{tail}{hint}")
        os.replace(part, out_file)


def quantize(src: Path, dst: Path, quant: str, threads: int | None = None) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[quant]
    params.nthread = threads or os.cpu_count() or 1
    part = dst.with_suffix(".gguf.part")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(part).encode(), ctypes.byref(params))
    if rc != 0:
        part.unlink(missing_ok=True)
        raise DistillError(f"llama.cpp could not quantize {src.name} to {quant} (code {rc})")
    os.replace(part, dst)


def smoke_test(path: Path, max_tokens: int = 48) -> dict:
    """Load the file with llama.cpp, ask one question through its embedded chat template."""
    from distill.llama import load_gguf, render_prompt

    llm = load_gguf(path, n_ctx=512)
    prompt = render_prompt(llm, [{"role": "user", "content": SMOKE_QUESTION}])
    start = time.monotonic()
    res = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
    wall = time.monotonic() - start
    n = res["usage"]["completion_tokens"]
    return {"loads": True, "answer": res["choices"][0]["text"][:200], "tokens_per_s": round(n / wall, 1),
            "stopped": res["choices"][0]["finish_reason"] == "stop"}


def modelfile(gguf_name: str, template_stop: str) -> str:
    return (f"FROM ./{gguf_name}\n"
            f'PARAMETER stop "{template_stop}"\n'
            "PARAMETER temperature 0.6\nPARAMETER top_p 0.95\n")


def run(model_dir: Path, out_dir: Path, name: str, quants: list[str], base_model: str,
        recipe_name: str, recipe_sha256: str, datasets: list[str] | None = None, license: str = "apache-2.0",
        stop_token: str = "<|im_end|>", extra_quality: dict | None = None) -> dict:
    """Write `<name>-F16.gguf` and `<name>-<QUANT>.gguf` into `out_dir` with manifest, Modelfile, card."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "config.json").exists():
        raise DistillError(f"{model_dir} is not a trained student folder (no config.json); run `distill train` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {"general.name": name, "general.basename": name,
                "general.description": f"Reasoning student distilled with distill (recipe {recipe_name}, "
                                       f"sha256 {recipe_sha256})",
                "general.base_models": [{"name": base_model}],
                "general.datasets": [{"name": d} for d in (datasets or [])],
                "general.tags": ["reasoning", "distill", f"recipe-sha256:{recipe_sha256[:16]}"]}
    f16 = out_dir / f"{name}-F16.gguf"
    convert(model_dir, f16, metadata, license)
    files = [("F16", f16)]
    for q in quants:
        if q == "F16":
            continue
        dst = out_dir / f"{name}-{q}.gguf"
        quantize(f16, dst, q)
        files.append((q, dst))
    entries = []
    for quant, path in files:
        entry = {"file": path.name, "quant": quant, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        entry.update(smoke_test(path))
        entry.update((extra_quality or {}).get(quant, {}))
        entries.append(entry)
    manifest = {"name": name, "base_model": base_model,
                "recipe": {"name": recipe_name, "sha256": recipe_sha256},
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": entries}
    default = next((e["file"] for e in entries if e["quant"] == "Q4_K_M"), entries[-1]["file"])
    write_text(out_dir / "Modelfile", modelfile(default, stop_token))
    write_text(out_dir / "README.md", model_card(manifest))
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def model_card(manifest: dict) -> str:
    rows = "\n".join(
        f"| `{e['file']}` | {e['quant']} | {e['bytes'] / 2**20:.1f} MiB | {e.get('pass@1', '–')} | "
        f"{e.get('tokens_per_s', '–')} | `{e['sha256'][:12]}…` |" for e in manifest["files"])
    name = manifest["name"]
    return f"""# {name}

A small reasoning model distilled by [distill](https://github.com/) from `{manifest['base_model']}`
(recipe `{manifest['recipe']['name']}`, sha256 `{manifest['recipe']['sha256'][:16]}…`).
It thinks inside `<think> … </think>` and puts its final answer in `\\boxed{{}}`.

| file | quant | size | pass@1 (eval split) | tokens/s (this CPU) | sha256 |
| --- | --- | --- | --- | --- | --- |
{rows}

## Run it
- distill: `distill chat {name}-Q4_K_M.gguf`
- llama.cpp: `llama-cli -m {name}-Q4_K_M.gguf -cnv` (the chat template and stop token are embedded)
- Ollama: `ollama create {name} -f Modelfile && ollama run {name}`
- LM Studio: load the `.gguf`; the embedded template is used as is.
"""


def read_manifest(out_dir: Path) -> dict:
    return read_json(Path(out_dir) / "manifest.json")
