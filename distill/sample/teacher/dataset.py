"""Import existing R1 traces instead of sampling: public distillation sets mapped to our traces.

Layouts (columns as published on the hub; `teacher.dataset_layout: auto` tells them apart):
  openr1        open-r1/OpenR1-Math-220k: problem, answer, uuid, generations[], finish_reasons[],
                correctness_math_verify[]  -> one trace per generation
  conversations open-thoughts/OpenThoughts-114k (default), bespokelabs/Bespoke-Stratos-17k:
                system, conversations[{from, value}] with <|begin_of_thought|> ... markers
  openthoughts  open-thoughts/OpenThoughts-114k `metadata` config: problem, deepseek_reasoning,
                deepseek_solution, ground_truth_solution, domain, test_cases
  s1k           simplescaling/s1K-1.1: question, solution, deepseek_thinking_trajectory,
                deepseek_attempt (deepseek_grade where present)

`teacher.model` is a hub name (read through `datasets`, streamed) or a local .jsonl/.json/.parquet
file or folder of them (or a `save_to_disk` folder): the same mapping code runs on both.

    teacher: {backend: dataset, model: open-r1/OpenR1-Math-220k, dataset_split: train}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from distill.errors import DistillError
from distill.r1 import R1_INSTRUCTION, THINK_CLOSE, THINK_OPEN, last_boxed, normalise_completion
from distill.records import CodeTest, Trace
from distill.sample.teacher.base import Teacher

R1 = "deepseek-ai/DeepSeek-R1"
LAYOUTS = ("openr1", "conversations", "openthoughts", "s1k")
# Sky-T1 / Bespoke / OpenThoughts thought markers -> R1 form.
_MARKERS = {"<|begin_of_thought|>": THINK_OPEN, "<|end_of_thought|>": THINK_CLOSE,
            "<|begin_of_solution|>": "", "<|end_of_solution|>": ""}


def detect_layout(columns: list[str] | set[str]) -> str:
    cols = set(columns)
    if {"generations", "problem"} <= cols:
        return "openr1"
    if "conversations" in cols:
        return "conversations"
    if {"deepseek_reasoning", "deepseek_solution"} <= cols:
        return "openthoughts"
    if {"question", "deepseek_thinking_trajectory"} <= cols:
        return "s1k"
    raise DistillError(f"columns {sorted(cols)} match no known trace layout; set `teacher.dataset_layout` "
                       f"to one of {LAYOUTS} or convert the file")


def problem_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _gold(text: str | None) -> str:
    """The gold answer: the last \\boxed{} of a worked solution, else the text itself."""
    if not text:
        return ""
    boxed = last_boxed(text)
    return (boxed if boxed is not None else text).strip()


def _strip_instruction(problem: str) -> str:
    return problem.replace(R1_INSTRUCTION, "").strip()


def _tests(raw) -> list[CodeTest] | None:
    """APPS/TACO-style {"inputs": [...], "outputs": [...], "fn_name"?} -> our code tests (None if
    absent). Call-based (`fn_name`): each input is the argument list, kept as JSON (SPEC.md)."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        pairs = zip(data["inputs"], data["outputs"])
        if fn := data.get("fn_name"):
            return [CodeTest(input=json.dumps(i), output=json.dumps(o), fn_name=fn) for i, o in pairs] or None
        return [CodeTest(input=str(i), output=str(o)) for i, o in pairs] or None
    except (TypeError, KeyError, ValueError):
        return None


def _apart(answer: str | None, reasoning: str) -> str | None:
    """The reasoning is stored once, inside the R1-form completion; only an answer that already
    holds its own think block (so the reasoning could not go in) keeps it apart."""
    return reasoning if reasoning and THINK_CLOSE in (answer or "") else None


def map_row(row: dict, layout: str) -> Iterator[dict]:
    """One dataset row -> trace dicts (problem_id filled; sample_index assigned by the caller)."""
    if layout == "openr1":
        problem = row["problem"]
        finish = row.get("finish_reasons") or []
        verified = row.get("correctness_math_verify") or []
        for j, gen in enumerate(row.get("generations") or []):
            yield dict(problem_id=row.get("uuid") or problem_id("openr1", problem), problem=problem,
                       answer=str(row.get("answer") or _gold(row.get("solution"))), teacher=R1,
                       completion=normalise_completion(gen), source=row.get("source"),
                       finish_reason=finish[j] if j < len(finish) and finish[j] else None,
                       dataset_verified=verified[j] if j < len(verified) else None)
    elif layout == "conversations":
        turns = row["conversations"]
        user = next(t["value"] for t in turns if t["from"] in ("user", "human"))
        reply = next(t["value"] for t in turns if t["from"] in ("assistant", "gpt"))
        for marker, repl in _MARKERS.items():
            reply = reply.replace(marker, repl)
        completion = normalise_completion(reply.strip())
        final = completion.rpartition(THINK_CLOSE)[2]
        # These sets publish no gold answer; they were filtered for correctness by their authors,
        # so the teacher's own final answer stands in for it (marked, so users can tell).
        yield dict(problem_id=problem_id("conv", user), problem=_strip_instruction(user),
                   answer=_gold(final), answer_from="teacher", teacher=R1, completion=completion)
    elif layout == "openthoughts":
        domain = "code" if row.get("domain") == "code" else "math"
        tests = _tests(row.get("test_cases")) if domain == "code" else None
        if domain == "code" and not tests:
            return  # a code trace without tests cannot be judged
        reasoning = row.get("deepseek_reasoning") or ""
        yield dict(problem_id=problem_id("ot", row["problem"]), problem=row["problem"],
                   answer=_gold(row.get("ground_truth_solution")) if domain == "math" else "",
                   domain=domain, tests=[t.model_dump() for t in tests] if tests else None, teacher=R1,
                   completion=normalise_completion(row.get("deepseek_solution"), reasoning),
                   reasoning_content=_apart(row.get("deepseek_solution"), reasoning), source=row.get("source"))
    elif layout == "s1k":
        reasoning = row.get("deepseek_thinking_trajectory") or ""
        yield dict(problem_id=problem_id("s1k", row["question"]), problem=row["question"],
                   answer=_gold(row.get("solution")), teacher=R1,
                   completion=normalise_completion(row.get("deepseek_attempt"), reasoning),
                   reasoning_content=_apart(row.get("deepseek_attempt"), reasoning), source=row.get("source_type"),
                   dataset_grade=row.get("deepseek_grade"))
    else:
        raise DistillError(f"unknown dataset layout {layout!r}; choose from {LAYOUTS}")


def load_rows(ref: str, split: str = "train", config: str | None = None):
    """Rows of a local file/folder or a hub dataset (streamed: no 10 GB download up front)."""
    import datasets

    path = Path(ref)
    if path.exists():
        if path.is_dir() and (path / "state.json").exists():
            return datasets.load_from_disk(str(path))
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json",
                                                                                                ".parquet"))
        if not files:
            raise DistillError(f"{path} holds no .jsonl, .json or .parquet files")
        kind = "parquet" if files[0].suffix == ".parquet" else "json"
        return datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train")
    if ref.count("/") != 1 or ref.startswith((".", "/")):
        raise DistillError(f"{ref} is neither a local file/folder nor a hub dataset name (org/name)")
    try:
        return datasets.load_dataset(ref, config, split=split, streaming=True)
    except Exception as e:  # no hub, unknown name, gated set: say what to do
        raise DistillError(f"could not open hub dataset {ref} ({type(e).__name__}); check the name, "
                           "your network and HF_TOKEN, or download it and point `teacher.model` at the folder") from e


class DatasetTeacher(Teacher):
    """Not a sampler: `traces()` yields finished traces that the sampler writes (resumably)."""

    def __init__(self, ref: str, layout: str = "auto", split: str = "train", config: str | None = None,
                 limit: int | None = None):
        self.name = ref
        self.ref, self.layout, self.split, self.config, self.limit = ref, layout, split, config, limit
        self.skipped = 0

    def traces(self) -> Iterator[Trace]:
        rows = load_rows(self.ref, self.split, self.config)
        layout = self.layout
        seen: dict[str, int] = {}  # per problem: the next sample_index (repeated problems add samples)
        for n, row in enumerate(rows):
            if self.limit is not None and n >= self.limit:
                break
            if layout == "auto":
                layout = detect_layout(row.keys())
            try:
                mapped = list(map_row(row, layout))
            except (KeyError, StopIteration, TypeError) as e:
                raise DistillError(f"{self.ref} row {n}: does not fit layout `{layout}` ({type(e).__name__}: "
                                   f"{e}); set `teacher.dataset_layout`") from None
            if not mapped:
                self.skipped += 1
            for rec in mapped:
                pid = rec["problem_id"]
                rec["sample_index"] = seen.get(pid, 0)
                seen[pid] = rec["sample_index"] + 1
                yield Trace.model_validate({k: v for k, v in rec.items() if v is not None})
