"""Results as the papers give them: pass@1 as the mean over problems of each problem's share of
correct samples, with its standard error; unbiased pass@k; truncation rate; mean thinking tokens.

The standard error treats problems as the unit (samples of one problem are not independent):
SE = sqrt(sum_i (p_i - p)^2) / m over the m problems' pass rates p_i, the clustered standard
error of "Adding Error Bars to Evals" (Miller 2024). With one sample per problem it is the
binomial formula sqrt(p (1 - p) / m).

    summary = summarise(rows, problems, cfg)   # {"pass@1": 0.3, "pass@1_se": 0.07, "truncation_rate": ...}
    paired_difference(q4_rows, f16_rows)        # (-0.025, 0.018): pass@1 of one file minus another's
"""

from __future__ import annotations

import math

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k),
    computed as a running product so large n does not overflow."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_and_se(values: list[float]) -> tuple[float, float]:
    """Mean over problems and its standard error sqrt(sum (x - mean)^2) / m (see the module docstring)."""
    if not values:
        return 0.0, 0.0
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()), float(math.sqrt(((x - x.mean()) ** 2).sum()) / len(x))


def summarise(rows: list[dict], problem_ids: list[str], n: int, pass_k: list[int] = ()) -> dict:
    """Per-sample rows (problem_id, correct, completion_tokens, finish_reason, thinking_tokens,
    closed_think) -> pass@1 ± SE, each pass@k ± SE, truncation and form rates, mean lengths."""
    by_problem: dict[str, list[bool]] = {pid: [] for pid in problem_ids}
    for r in rows:
        by_problem[r["problem_id"]].append(bool(r["correct"]))
    scored = [v for v in by_problem.values() if v]
    out: dict = {"problems": len(problem_ids), "n": n, "samples": len(rows)}
    for k in sorted({1, *pass_k}):
        mean, se = mean_and_se([pass_at_k(len(v), sum(v), k) for v in scored if len(v) >= k])
        out[f"pass@{k}"], out[f"pass@{k}_se"] = round(mean, 4), round(se, 4)
    count = max(len(rows), 1)
    # A sample that ran into max_tokens was cut, whatever it said: the papers' "truncated" share.
    out["truncation_rate"] = round(sum(r.get("finish_reason") == "length" for r in rows) / count, 4)
    out["closed_think_rate"] = round(sum(bool(r["closed_think"]) for r in rows) / count, 4)
    out["mean_completion_tokens"] = round(sum(r["completion_tokens"] for r in rows) / count, 1)
    thinking = [r["thinking_tokens"] for r in rows if r.get("thinking_tokens") is not None]
    out["mean_thinking_tokens"] = round(sum(thinking) / len(thinking), 1) if thinking else None
    return out


def paired_difference(rows: list[dict], reference: list[dict]) -> tuple[float, float]:
    """pass@1 of `rows` minus that of `reference`, two models' rows on the same problems, and the standard
    error of that difference over the per-problem differences (paired, as "Adding Error Bars to Evals"
    recommends for comparing models). Where the two mostly answer alike (a quant and its F16) the paired
    error is far smaller than the two models' own errors, which overlap however close the files are."""
    def rates(rs: list[dict]) -> dict[str, float]:
        by: dict[str, list[bool]] = {}
        for r in rs:
            by.setdefault(r["problem_id"], []).append(bool(r["correct"]))
        return {pid: sum(v) / len(v) for pid, v in by.items()}

    a, b = rates(rows), rates(reference)
    if set(a) != set(b):
        raise ValueError(f"paired difference needs the same problems (only in one: {sorted(set(a) ^ set(b))[:3]})")
    return mean_and_se([a[pid] - b[pid] for pid in a])
