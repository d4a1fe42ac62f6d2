"""Held-out text for proving an export, never the traces the student was trained on:

- KL divergence and F16 parity: the eval split's problems with the student's own completions (what
  the eval stage wrote, or generated here from the F16 file through llama.cpp's server);
- the importance matrix: teacher traces the filter rejected (never trained on), topped up with the
  student's completions on train-split problems where there are too few.

llama-perplexity tokenizes its text without parsing special tokens, so the KL divergence text is
the conversations as plain text (the R1 prompt, a blank line, the completion): chat markers would
otherwise be scored as strings of ordinary tokens no model ever sees. llama-imatrix parses them,
so its calibration text is rendered with the chat template.

    pairs = eval_pairs(Path("data/runs/smol/eval/student.jsonl"), problems)   # [(problem, completion)]
    write_text(path, plain_text(pairs))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.records import Problem, Trace, read_records
from distill.sample.prompts import student_messages, user_prompt

Pair = tuple[Any, str]  # (a Problem, Trace or bare question, its completion in R1 form)


def plain_text(pairs: list[Pair]) -> str:
    return "\n\n".join(f"{user_prompt(p)}\n\n{c.strip()}" for p, c in pairs) + "\n"


def chat_texts(tok, pairs: list[Pair]) -> list[str]:
    """Each pair as the whole conversation in the student's chat template (its own special tokens)."""
    return [tok.apply_chat_template(student_messages(p) + [{"role": "assistant", "content": c}], tokenize=False)
            for p, c in pairs]


def eval_pairs(rows_path: Path, problems: list[Problem]) -> list[Pair]:
    """(problem, completion) for every sample the eval stage wrote for `problems`: every problem's
    first sample, then every problem's second, ... (as many problems as possible in a capped text)."""
    by_id = {p.id: p for p in problems}
    rows = []
    if Path(rows_path).exists():
        with open(rows_path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row.get("problem_id") in by_id and row.get("completion", "").strip():
                    rows.append(row)
    rows.sort(key=lambda r: r.get("sample_index", 0))  # stable: the eval order within each round
    return [(by_id[r["problem_id"]], r["completion"]) for r in rows]


def capped(pairs: list[Pair], max_chars: int) -> list[Pair]:
    """The first pairs holding about `max_chars` characters (the tools read no more than that)."""
    out, chars = [], 0
    for p, c in pairs:
        if chars >= max_chars:
            break
        out.append((p, c))
        chars += len(c) + len(getattr(p, "problem", p))
    return out


def rejected_pairs(rejected_path: Path, max_chars: int) -> list[Pair]:
    """Teacher traces the filter rejected (well-formed records only), about `max_chars` of them:
    reasoning never trained on."""
    pairs, chars = [], 0
    if Path(rejected_path).exists():
        for trace in read_records(rejected_path, Trace):
            if isinstance(trace, Trace) and trace.completion.strip():
                pairs.append((trace, trace.completion))
                chars += len(trace.problem) + len(trace.completion)
            if chars >= max_chars:
                break
    return pairs


def student_pairs(gguf: Path, problems: list[Problem], eval_cfg) -> list[Pair]:
    """The student's own completions on `problems`, from `gguf` through llama.cpp's server."""
    from distill.evaluate import harness

    if not problems:
        return []
    rows: list[dict] = []
    harness.run(str(gguf), problems, eval_cfg, show_progress=False, served=True, rows_out=rows)
    by_id = {p.id: p for p in problems}
    return [(by_id[r["problem_id"]], r["completion"]) for r in rows if r["completion"].strip()]
