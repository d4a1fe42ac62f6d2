"""GGUF quants with llama.cpp's own tools: an importance matrix from calibration text
(`llama-imatrix`), quantizing one file (`llama-quantize`, with that matrix for the K and IQ quants),
and reading back which tensor types a file really holds (llama.cpp silently falls back to another
type for a tensor whose row length is not a multiple of the quant's block, e.g. 576 % 256).

    imatrix(Path("smol-F16.gguf"), Path("calibration.txt"), Path("imatrix.gguf"), ctx=512, chunks=64)
    report = quantize(Path("smol-F16.gguf"), Path("smol-Q4_K_M.gguf"), "Q4_K_M", imatrix=Path("imatrix.gguf"))
    report["fallback"]  # [{"tensor": "blk.0.attn_q.weight", "ncols": 576, "wanted": "q4_K", "got": "q5_0"}]
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from distill.errors import DistillError
from distill.llamacpp import quantize_file, run_tool_into, tool

# llama-quant.cpp: "warning: <tensor> - ncols 64 not divisible by 256 (required for type q4_K) -> falling back to q5_0"
_FALLBACK = re.compile(r"warning:\s+(\S+)\s+- ncols\s+(\d+) not divisible by\s+(\d+) "
                       r"\(required for type\s+(\S+)\)(?:\s*->\s*falling back to\s+(\S+))?")


def uses_imatrix(quant: str) -> bool:
    """K and IQ quants take an importance matrix (bartowski and unsloth quantize every one with one);
    the legacy Q4_0/Q8_0 and F16 are written without, as llama.cpp's own reference files are."""
    return "_K" in quant or quant.startswith("IQ")


def imatrix(f16: Path, text_file: Path, out: Path, ctx: int, chunks: int, gpu_layers: int | None = None,
            threads: int | None = None) -> dict:
    """llama-imatrix over `text_file` (special tokens parsed: the chat template's own tokens) into `out`."""
    part = out.with_suffix(".part.gguf")
    cmd = [str(tool("llama-imatrix")), "-m", str(f16), "-f", str(text_file), "-o", str(part), "-c", str(ctx),
           "-b", str(ctx), "--chunks", str(chunks), "--parse-special", "-t", str(threads or os.cpu_count() or 1),
           "--no-ppl"]
    if gpu_layers:
        cmd += ["-ngl", str(gpu_layers)]
    log = run_tool_into(cmd, f"llama-imatrix on {f16.name}", part, out)
    m = re.search(r"computing over (\d+) chunks", log)
    return {"file": out.name, "chunks": int(m.group(1)) if m else None, "ctx": ctx}


def quantize(src: Path, dst: Path, quant: str, imatrix: Path | None = None, threads: int | None = None) -> dict:
    """`src` (F16 GGUF) -> `dst` at `quant` with llama-quantize; returns the tensor-type census and the
    fallbacks llama.cpp logged while quantizing."""
    log = quantize_file(src, dst, quant, imatrix, threads)
    return {"fallback": parse_fallbacks(log), "imatrix": imatrix is not None, **tensor_census(dst)}


def parse_fallbacks(log: str) -> list[dict]:
    return [{"tensor": m.group(1), "ncols": int(m.group(2)), "block": int(m.group(3)), "wanted": m.group(4),
             "got": m.group(5)} for m in _FALLBACK.finditer(log)]


def tensor_census(path: Path) -> dict:
    """Tensor types and bits per weight of a GGUF file, read with gguf-py's GGUFReader."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as e:
        raise DistillError(f"{Path(path).name} is not a readable GGUF file ({e}); re-export it") from None
    types: Counter = Counter()
    n_bytes = n_weights = 0
    for t in reader.tensors:
        types[t.tensor_type.name] += 1
        n_bytes += int(t.n_bytes)
        n_weights += int(t.n_elements)
    return {"tensor_types": dict(types.most_common()), "tensors": sum(types.values()),
            "bits_per_weight": round(8 * n_bytes / max(n_weights, 1), 2)}
