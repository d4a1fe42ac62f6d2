"""Quant quality the llama.cpp way: `llama-perplexity --kl-divergence-base` runs F16 over held-out
text and saves its log-probabilities; `--kl-divergence` runs a quant over the same tokens and gives
the mean KL divergence to F16, how often the top token agrees, and both perplexities.

F16 measured against its own saved log-probabilities is the noise floor (they are stored as 16-bit
values): a quant's KL divergence means something only well above it.

llama.cpp's tools log through a queue that a worker thread drains, and the queue is not flushed when
the program exits (llama.cpp issue 22142): on a busy machine the closing summary is sometimes lost.
The figures are therefore read from the last per-chunk line (running totals over all chunks), with
the summary's percentiles where it arrived, and a run whose last chunk line is missing is repeated.

    base = KLDBase.compute(Path("smol-F16.gguf"), Path("heldout.txt"), tmp, ctx=512, chunks=32)
    base.compare(Path("smol-Q4_K_M.gguf"))   # {"kld": 0.051, "kld_se": 0.0018, "top1_agreement": 0.930, ...}
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.llamacpp import run_tool, tool

ATTEMPTS = 3
_NUM = r"(-?(?:[\d.]+(?:e-?\d+)?|nan|inf))"
# "   8    46996.9999 ±  557.5210      -0.00000 ±    0.00001       0.00000 ±    0.00000     0.000 ±  0.000 %    100.000 ±  0.000 %"
_CHUNK = re.compile(rf"^\s*(\d+)\s+{_NUM}\s+±\s+{_NUM}\s+{_NUM}\s+±\s+{_NUM}\s+{_NUM}\s+±\s+{_NUM}"
                    rf"\s+{_NUM}\s+±\s+{_NUM}\s+%\s+{_NUM}\s+±\s+{_NUM}\s+%\s*$", re.M)
_SUMMARY = {
    "kld": rf"Mean\s+KLD:\s+{_NUM}\s+±\s+{_NUM}",
    "kld_p99": rf"99\.0%\s+KLD:\s+{_NUM}",
    "kld_max": rf"Maximum KLD:\s+{_NUM}",
    "top1_agreement": rf"Same top p:\s+{_NUM}\s+±\s+{_NUM}\s+%",
}


def _pct(v: float | None) -> float | None:
    return None if v is None else round(v / 100, 6)


def parse_kld(log: str, chunks: int) -> dict | None:
    """The running totals of the last chunk (all `chunks` of them), or None when that line is missing;
    the summary's more precise mean and its percentiles where the summary arrived."""
    rows = {int(m.group(1)): m for m in _CHUNK.finditer(log)}
    last = rows.get(chunks)
    if last is None:
        return None
    # nan where llama.cpp has nothing to divide by (an uncertainty of F16 against itself): None in JSON.
    g = [v if math.isfinite(v := float(x)) else None for x in last.groups()[1:]]
    out = {"perplexity": g[0], "perplexity_se": g[1], "ln_ppl_ratio": g[2], "ln_ppl_ratio_se": g[3],
           "kld": g[4], "kld_se": g[5], "rms_dp": _pct(g[6]), "rms_dp_se": _pct(g[7]),
           "top1_agreement": _pct(g[8]), "top1_agreement_se": _pct(g[9])}
    for key, pattern in _SUMMARY.items():
        m = re.search(pattern, log)
        if m:
            scale = 0.01 if key == "top1_agreement" else 1.0
            out[key] = round(float(m.group(1)) * scale, 6)
            if m.lastindex and m.lastindex > 1:
                out[key + "_se"] = round(float(m.group(2)) * scale, 6)
    return out


@dataclass
class KLDBase:
    """F16's saved log-probabilities over the held-out text, and how to compare a file against them."""

    path: Path
    ctx: int
    chunks: int
    gpu_layers: int | None = None
    threads: int | None = None

    @classmethod
    def compute(cls, f16: Path, text_file: Path, work_dir: Path, ctx: int, chunks: int,
                gpu_layers: int | None = None, threads: int | None = None) -> KLDBase:
        base = cls(Path(work_dir) / f"{Path(f16).stem}.kld-base", ctx, chunks, gpu_layers, threads)
        log = run_tool(base._cmd(f16) + ["-f", str(text_file), "--chunks", str(chunks),
                                     "--kl-divergence-base", str(base.path)], f"llama-perplexity on {Path(f16).name}")
        if "you need at least" in log or not base.path.exists():
            raise DistillError(f"the held-out text is too short for chunks of {ctx} tokens:\n{log.strip()[-400:]}")
        m = re.search(r"over (\d+) chunks", log)
        base.chunks = int(m.group(1)) if m else chunks
        return base

    @property
    def scored_tokens(self) -> int:
        return self.chunks * (self.ctx - 1 - self.ctx // 2)

    def _cmd(self, gguf: Path) -> list[str]:
        # -b = -c: one sequence per batch, whatever the context (llama-perplexity asserts n_batch % n_ctx == 0)
        cmd = [str(tool("llama-perplexity")), "-m", str(gguf), "-c", str(self.ctx), "-b", str(self.ctx),
               "-t", str(self.threads or os.cpu_count() or 1)]
        return cmd + (["-ngl", str(self.gpu_layers)] if self.gpu_layers else [])

    def compare(self, gguf: Path) -> dict:
        """KL divergence, top-1 agreement and perplexity of `gguf` against F16 (see the module docstring)."""
        log = ""
        for _ in range(ATTEMPTS):
            log = run_tool(self._cmd(gguf) + ["--kl-divergence-base", str(self.path), "--kl-divergence"],
                       f"llama-perplexity --kl-divergence on {Path(gguf).name}")
            res = parse_kld(log, self.chunks)
            if res is not None:
                return res
        errors = [line for line in log.splitlines() if " E " in line]
        raise DistillError(f"llama-perplexity printed no result for chunk {self.chunks} of {Path(gguf).name} in "
                           f"{ATTEMPTS} runs:\n" + "\n".join(errors[-5:] or [log.strip()[-800:]]))
