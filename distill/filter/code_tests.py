"""How a code answer's output is judged against a test, the way code benchmarks judge it.

    same_stdout("3.0000001\\n", "3")            # True: tokens, floats within 1e-6
    call_args('[[2, 7, 11, 15], 9]')            # [[2, 7, 11, 15], 9]
    same_return("[0, 1]", "[[0, 1]]")           # True: APPS/TACO wrap the return value in a list
    language("#include <cstdio>\\nint main(){}", "")   # "cpp"

Tests (SPEC.md): `{"input", "output"}` for stdin/stdout, or with `fn_name` for call-based tests,
where `input` is a JSON array of the positional arguments (LiveCodeBench's one JSON value per line
and Python literals are read too) and `output` the JSON of the return value.

- stdout: compared token by token, so spaces, line breaks and trailing blank lines do not matter
  (Codeforces' default checker, testlib's `wcmp`); a token where either side is a decimal number
  may differ by 1e-6, absolute or relative (testlib's `rcmp6`), while integers must match exactly.
- return values: equal after a JSON round trip (tuples are lists), floats within 1e-6; an expected
  value wrapped in a one-element list also matches the bare value (as the APPS/TACO harness does).
"""

from __future__ import annotations

import ast
import json
import math
import re

FLOAT_TOL = 1e-6
LANGUAGES = {"python": "python", "py": "python", "python3": "python", "py3": "python",
             "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "c++17": "cpp", "c++20": "cpp"}
_DECIMAL = re.compile(r"[.eE]|^[-+]?(inf|nan)", re.IGNORECASE)


def language(code: str, tag: str) -> str | None:
    """The language of a code block: its fence tag, else a guess (`#include` means C++); None when
    the tag names a language we cannot judge."""
    tag = tag.strip().lower()
    if tag:
        return LANGUAGES.get(tag)
    return "cpp" if re.search(r"^\s*#\s*include\b", code, re.MULTILINE) else "python"


def _close(a: str, b: str) -> bool:
    if not (_DECIMAL.search(a) or _DECIMAL.search(b)):
        return False  # two integers (or words) that differ
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y):
        return False
    return abs(x - y) <= FLOAT_TOL * max(1.0, abs(y))


def same_stdout(got: str, want: str) -> bool:
    """The program's stdout matches the expected output, whitespace- and float-tolerant."""
    g, w = got.split(), want.split()
    return len(g) == len(w) and all(a == b or _close(a, b) for a, b in zip(g, w))


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        try:
            return [json.loads(line) for line in lines]  # LiveCodeBench: one argument per line
        except ValueError:
            pass
    return ast.literal_eval(text.strip())  # a Python literal (ValueError/SyntaxError when not)


def call_args(text: str) -> list:
    """The positional arguments of a call-based test from its `input`."""
    if not text.strip():
        return []
    value = _value(text)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _equal(got, want) -> bool:
    if isinstance(got, bool) or isinstance(want, bool):
        return got is want if isinstance(got, bool) and isinstance(want, bool) else False
    if isinstance(got, (int, float)) and isinstance(want, (int, float)):
        if isinstance(got, int) and isinstance(want, int):
            return got == want
        return _close(repr(float(got)), repr(float(want)))
    if isinstance(got, list) and isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(_equal(a, b) for a, b in zip(got, want))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_equal(got[k], want[k]) for k in got)
    return got == want


def same_return(got_json: str, want: str) -> bool:
    """The function's return value (JSON from the jail) matches the test's expected `output`."""
    try:
        got = json.loads(got_json)
        expected = _value(want)
    except (ValueError, SyntaxError):
        return False
    if _equal(got, expected):
        return True
    return isinstance(expected, list) and len(expected) == 1 and _equal(got, expected[0])
