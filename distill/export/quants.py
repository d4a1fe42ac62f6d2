"""GGUF quants: names mapped to llama.cpp's ftype ids, quantizing one file in process, and
reading back which tensor types a file really holds (llama.cpp silently falls back to another
type for a tensor whose row length is not a multiple of the quant's block, e.g. 576 % 256).

    report = quantize(Path("smol-F16.gguf"), Path("smol-Q4_K_M.gguf"), "Q4_K_M")
    report["fallback"]  # [{"tensor": "blk.0.attn_q.weight", "ncols": 576, "wanted": "q4_K", "got": "q5_0"}]
"""

from __future__ import annotations

import ctypes
import os
import re
from collections import Counter
from pathlib import Path

from distill.errors import DistillError
from distill.llamacpp import QUANT_TYPES

# llama-quant.cpp: "warning: <tensor> - ncols 64 not divisible by 256 (required for type q4_K) -> falling back to q5_0"
_FALLBACK = re.compile(r"warning:\s+(\S+)\s+- ncols\s+(\d+) not divisible by\s+(\d+) "
                       r"\(required for type\s+(\S+)\)(?:\s*->\s*falling back to\s+(\S+))?")


def quantize(src: Path, dst: Path, quant: str, threads: int | None = None) -> dict:
    """`src` (F16 GGUF) -> `dst` at `quant`; returns the tensor-type census and the fallbacks
    llama.cpp logged while quantizing."""
    import llama_cpp

    if quant not in QUANT_TYPES:
        raise DistillError(f"unknown quant {quant!r}; choose from {sorted(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[quant]
    params.nthread = threads or os.cpu_count() or 1
    part = Path(dst).with_suffix(".gguf.part")
    log: list[str] = []

    # llama.cpp reports fallbacks only through its log callback; capture it for this call, then
    # hand logging back to llama-cpp-python's own callback.
    @llama_cpp.llama_log_callback
    def capture(level, text, user_data):
        log.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(capture, ctypes.c_void_p(0))
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(part).encode(), ctypes.byref(params))
    finally:
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    if rc != 0:
        part.unlink(missing_ok=True)
        raise DistillError(f"llama.cpp could not quantize {Path(src).name} to {quant} (code {rc}):\n"
                           + "".join(log)[-800:])
    os.replace(part, dst)
    return {"fallback": parse_fallbacks("".join(log)), **tensor_census(dst)}


def parse_fallbacks(log: str) -> list[dict]:
    return [{"tensor": m.group(1), "ncols": int(m.group(2)), "block": int(m.group(3)), "wanted": m.group(4),
             "got": m.group(5)} for m in _FALLBACK.finditer(log)]


def tensor_census(path: Path) -> dict:
    """Tensor types and bits per weight of a GGUF file, read with gguf-py's GGUFReader."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    types: Counter = Counter()
    n_bytes = n_weights = 0
    for t in reader.tensors:
        types[t.tensor_type.name] += 1
        n_bytes += int(t.n_bytes)
        n_weights += int(t.n_elements)
    return {"tensor_types": dict(types.most_common()), "tensors": sum(types.values()),
            "bits_per_weight": round(8 * n_bytes / max(n_weights, 1), 2)}
