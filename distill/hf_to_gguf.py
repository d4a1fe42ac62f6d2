"""HF folder -> GGUF F16 with llama.cpp's own converter (`convert_hf_to_gguf.py` of the version
matching the installed llama-cpp-python, run as a subprocess). Shared by the eval stage (serving an
HF folder through llama.cpp's server on CPU) and the export stage.

    convert(Path("data/runs/smol/student"), Path("export/smol/smol-F16.gguf"), {"general.name": "smol"},
            chat_template=inference_template(template))
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from distill.assets import ensure_converter
from distill.errors import DistillError

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


def chat_template_of(model_dir: Path) -> str | None:
    """The folder's own chat template: chat_template.jinja (transformers 5) or tokenizer_config.json."""
    jinja = Path(model_dir) / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    cfg_path = Path(model_dir) / "tokenizer_config.json"
    return json.loads(cfg_path.read_text()).get("chat_template") if cfg_path.exists() else None


def _staged_folder(model_dir: Path, tmp: Path, license: str, chat_template: str | None) -> Path:
    """A view of `model_dir` with `chat_template` in place of its own (the caller's, without the
    training-only `{% generation %}` markers llama.cpp does not know), and a model card whose front
    matter gives the converter `general.license` (its override file has no key for it)."""
    stage = tmp / "model"
    stage.mkdir()
    (stage / "README.md").write_text(f"---\nlicense: {license}\n---\n")
    for f in model_dir.iterdir():
        if f.is_file() and f.name not in ("chat_template.jinja", "tokenizer_config.json", "README.md"):
            os.symlink(f.resolve(), stage / f.name)
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    cfg.pop("chat_template", None)
    if chat_template:
        cfg["chat_template"] = chat_template
    (stage / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    return stage


def convert(model_dir: Path, out_file: Path, metadata: dict, license: str = "apache-2.0",
            chat_template: str | None = None) -> None:
    """HF folder -> GGUF F16 with llama.cpp's converter; `chat_template` is embedded (None: none)."""
    conv = ensure_converter()
    model_dir, out_file = Path(model_dir), Path(out_file)
    with tempfile.TemporaryDirectory() as tmp:
        stage = _staged_folder(model_dir, Path(tmp), license, chat_template)
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
