"""Named layouts: one dataset row -> one Problem record, each layout with the columns it reads.

Column names are the hub repos' own (looked up on their dataset cards), so a local copy kept in
the same layout maps identically:

  problems     our Problem JSONL (SPEC.md), ids kept                          domain from the row
  numina       AI-MO/NuminaMath-1.5: problem, answer, question_type, problem_is_valid,
               solution_is_valid, source, synthetic; rows answered "proof"/"notfound" skipped   math
  openr1-math  open-r1/OpenR1-Math-220k: problem, answer, source, problem_type, question_type      math
  math         MATH train (DigitalLearningGmbH/MATH-lighteval, EleutherAI/hendrycks_math):
               problem, solution (gold = its last \\boxed{}), level, type                          math
  codeforces   open-r1/codeforces: title, description, input_format, output_format, examples,
               note, official_tests (+ official_tests_complete), time_limit, memory_limit,
               input_mode, interaction_format, generated_checker                                  code
  taco, apps   BAAI/TACO, codeparrot/apps: question, starter_code, input_output (JSON: inputs,
               outputs, fn_name for call-based tests), time_limit, memory_limit                    code
  gpqa         Idavidrein/gpqa: Question, Correct Answer, Incorrect Answer 1..3 (options shuffled
               per question, seeded, so the right one is not always A)                            choice
  choice       generic multiple choice: question + choices/options (a list, or ARC's
               {text, label}) + answer (letter, index or option text) / answerKey / answer_index   choice

    mapped = LAYOUTS["numina"].map(row)   # Mapped(fields={...}) or Mapped(skip="no_answer")
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distill.r1 import last_boxed

LETTERS = "ABCDEFGHIJ"
# NuminaMath-1.5 marks rows without a checkable final answer with these (dataset card; NeMo-RL's
# NuminaMath15Dataset drops the same).
NO_ANSWER = {"", "proof", "notfound", "none", "null"}


@dataclass
class Mapped:
    """A row's Problem fields (without `id`), or the reason it was skipped."""

    fields: dict[str, Any] | None = None
    skip: str | None = None


@dataclass(frozen=True)
class Layout:
    domain: str | None  # None: the row says (the `problems` layout)
    columns: tuple[str, ...]  # what it reads (the rest is never loaded)
    map: Callable[[dict], Mapped]
    default_where: dict[str, Any] = field(default_factory=dict)  # row filters a source may override
    keeps_ids: bool = False  # `problems`: the record's own id, not a hash


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _math_row(problem: Any, answer: Any) -> Mapped:
    text, gold = _text(problem), _text(answer)
    if not text:
        return Mapped(skip="empty_problem")
    if gold.lower() in NO_ANSWER:
        return Mapped(skip="no_answer")
    return Mapped({"problem": text, "answer": gold, "domain": "math"})


def _numina(row: dict) -> Mapped:
    if _text(row.get("question_type")).lower() == "proof":
        return Mapped(skip="proof")
    return _math_row(row.get("problem"), row.get("answer"))


def _openr1_math(row: dict) -> Mapped:
    return _math_row(row.get("problem"), row.get("answer"))


def _math(row: dict) -> Mapped:
    boxed = last_boxed(_text(row.get("solution")))
    return _math_row(row.get("problem"), boxed)


def _section(title: str, body: Any) -> str:
    body = _text(body)
    return f"\n\n## {title}\n\n{body}" if body else ""


def _examples(pairs: list[dict]) -> str:
    blocks = [f"Input\n```\n{_text(p.get('input'))}\n```\nOutput\n```\n{_text(p.get('output'))}\n```"
              for p in pairs or []]
    return "\n\n## Examples\n\n" + "\n\n".join(blocks) if blocks else ""


def _codeforces(row: dict) -> Mapped:
    # Interactive problems, file I/O and problems with several right outputs (they ship a checker)
    # cannot be judged by comparing stdout with the expected output.
    if _text(row.get("interaction_format")):
        return Mapped(skip="interactive")
    if _text(row.get("input_mode")) not in ("", "stdio"):
        return Mapped(skip="file_io")
    if _text(row.get("generated_checker")):
        return Mapped(skip="needs_checker")
    tests = row.get("official_tests") or []
    if not tests or row.get("official_tests_complete") is False:
        return Mapped(skip="tests_incomplete")
    text = (_text(row.get("title")) + "\n\n" + _text(row.get("description"))
            + _section("Input", row.get("input_format")) + _section("Output", row.get("output_format"))
            + _examples(row.get("examples") or []) + _section("Note", row.get("note"))).strip()
    fields = {"problem": text, "answer": "", "domain": "code",
              "tests": [{"input": _text_raw(t.get("input")), "output": _text_raw(t.get("output"))} for t in tests]}
    if row.get("time_limit"):
        fields["time_limit_s"] = float(row["time_limit"])
    if row.get("memory_limit"):
        fields["memory_mb"] = int(float(row["memory_limit"]))
    return Mapped(fields)


def _text_raw(value: Any) -> str:
    """Test input/output as given (stdin needs its exact newlines); lists become lines (APPS)."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def _first_number(text: Any) -> float | None:
    m = re.search(r"\d+(?:\.\d+)?", _text(text))
    return float(m.group()) if m else None


def _taco(row: dict) -> Mapped:
    try:
        io = json.loads(row.get("input_output") or "{}")
        inputs, outputs = io["inputs"], io["outputs"]
    except (ValueError, KeyError, TypeError):
        return Mapped(skip="no_tests")
    if not inputs or len(inputs) != len(outputs):
        return Mapped(skip="no_tests")
    text, starter = _text(row.get("question")), _text(row.get("starter_code"))
    if not text:
        return Mapped(skip="empty_problem")
    fn_name = io.get("fn_name")
    if fn_name:
        # Call-based: the arguments and the return value as JSON text, so the record stays
        # {"input": str, "output": str} and the judge decodes both (APPS/TACO's own convention).
        tests = [{"input": json.dumps(a), "output": json.dumps(o), "fn_name": str(fn_name)}
                 for a, o in zip(inputs, outputs)]
    else:
        tests = [{"input": _text_raw(a), "output": _text_raw(o)} for a, o in zip(inputs, outputs)]
    if starter:
        text += f"\n\nStarter code:\n```python\n{starter}\n```"
    fields = {"problem": text, "answer": "", "domain": "code", "tests": tests}
    if (t := _first_number(row.get("time_limit"))) is not None:
        fields["time_limit_s"] = t
    if (m := _first_number(row.get("memory_limit"))) is not None:
        fields["memory_mb"] = int(m)
    return Mapped(fields)


def _lettered(question: str, options: list[str]) -> str:
    return question + "\n\n" + "\n".join(f"{LETTERS[k]}) {o}" for k, o in enumerate(options))


def _gpqa(row: dict) -> Mapped:
    try:
        options = [_text(row["Correct Answer"])] + [_text(row[f"Incorrect Answer {k}"]) for k in (1, 2, 3)]
    except KeyError:
        return Mapped(skip="no_answer")
    question = _text(row.get("Question"))
    if not question or not all(options):
        return Mapped(skip="no_answer")
    # The file lists the right option first: shuffle, seeded by the question, so reruns agree.
    order = list(range(4))
    random.Random(hashlib.sha256(question.encode()).hexdigest()).shuffle(order)
    choices = [options[j] for j in order]
    return Mapped({"problem": _lettered(question, choices), "answer": LETTERS[order.index(0)],
                   "domain": "choice", "choices": choices})


def _choice(row: dict) -> Mapped:
    question = _text(next((row[k] for k in ("question", "Question", "problem") if row.get(k)), ""))
    raw = next((row[k] for k in ("choices", "options") if row.get(k) is not None), None)
    if isinstance(raw, dict):  # ARC: {"text": [...], "label": ["A", ...]}
        raw = raw.get("text")
    choices = [_text(c) for c in raw or []]
    if not question or len(choices) < 2 or len(choices) > len(LETTERS):
        return Mapped(skip="no_choices")
    answer = next((row[k] for k in ("answer", "answerKey", "answer_index") if row.get(k) is not None), None)
    letter = None
    if isinstance(answer, bool):
        answer = None
    if isinstance(answer, int) or (isinstance(answer, str) and answer.strip().isdigit()):
        index = int(answer)
        letter = LETTERS[index] if 0 <= index < len(choices) else None
    elif isinstance(answer, str) and answer.strip().upper() in LETTERS[:len(choices)]:
        letter = answer.strip().upper()
    elif isinstance(answer, str) and answer.strip() in choices:
        letter = LETTERS[choices.index(answer.strip())]
    if letter is None:
        return Mapped(skip="no_answer")
    return Mapped({"problem": _lettered(question, choices), "answer": letter, "domain": "choice",
                   "choices": choices})


def _problems(row: dict) -> Mapped:
    fields = {k: v for k, v in row.items() if v is not None}
    if not _text(fields.get("problem")):
        return Mapped(skip="empty_problem")
    return Mapped(fields)


LAYOUTS: dict[str, Layout] = {
    "problems": Layout(None, (), _problems, keeps_ids=True),
    "numina": Layout("math", ("problem", "answer", "question_type", "problem_type", "problem_is_valid",
                              "solution_is_valid", "source", "synthetic"), _numina,
                     default_where={"problem_is_valid": "Yes", "solution_is_valid": "Yes"}),
    "openr1-math": Layout("math", ("problem", "answer", "problem_type", "question_type", "source"), _openr1_math),
    "math": Layout("math", ("problem", "solution", "level", "type"), _math),
    "codeforces": Layout("code", ("id", "title", "description", "input_format", "output_format", "interaction_format",
                                  "note", "examples", "official_tests", "official_tests_complete", "time_limit",
                                  "memory_limit", "input_mode", "generated_checker", "rating", "tags",
                                  "contest_start_year"), _codeforces),
    "taco": Layout("code", ("question", "starter_code", "input_output", "difficulty", "time_limit",
                            "memory_limit", "source"), _taco),
    "apps": Layout("code", ("question", "starter_code", "input_output", "difficulty"), _taco),
    "gpqa": Layout("choice", ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                              "Incorrect Answer 3", "Subdomain", "High-level domain"), _gpqa),
    "choice": Layout("choice", ("question", "Question", "problem", "choices", "options", "answer", "answerKey",
                                "answer_index", "subject", "category"), _choice),
}


def matches(row: dict, where: dict[str, Any]) -> bool:
    """A source's row filters: a value (equal), a list (any of them), {min, max} (a range);
    None accepts anything (it switches off a layout's default filter)."""
    for column, want in where.items():
        if want is None:
            continue
        have = row.get(column)
        if isinstance(want, dict):
            if have is None or ("min" in want and have < want["min"]) or ("max" in want and have > want["max"]):
                return False
        elif isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True
