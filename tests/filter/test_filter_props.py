"""Property-based: whatever the input lines, every one ends in exactly one output file, nothing
crashes, and lines that are not valid traces are `malformed_record`."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.filter import judging as trace_filter
from distill.recipe import FilterCfg
from distill.records import Trace, parse_record

VALID = {"problem_id": "p1", "sample_index": 0, "problem": "Mia has 14 shells and finds 23 more. How many now?",
         "answer": "37", "domain": "math", "teacher": "r1", "finish_reason": "stop",
         "completion": "<think>\n14 + 23 = 37\n</think>\n\n\\boxed{37}"}

# Pieces R1 completions are made of, so random completions hit the parser's edge cases.
PIECES = st.sampled_from(["<think>", "</think>", "\\boxed{", "}", "{", "\\frac{1}{2}", "37", "0.5", "thirty-seven",
                          "The answer is ", "```python\nprint(1)\n```", "\n", " ", "所以", "(B)", "$", "\\sqrt{",
                          "10^{10^{10}}", "9" * 40])
COMPLETIONS = st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=12).map("".join)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=6)


@st.composite
def mutated_record(draw) -> str:
    rec = dict(VALID)
    rec["sample_index"] = draw(st.integers(0, 3))
    rec["completion"] = draw(COMPLETIONS)
    rec["domain"] = draw(st.sampled_from(["math", "choice", "code", "chemistry"]))
    if rec["domain"] == "choice":
        rec["choices"] = draw(st.lists(st.text(max_size=6), max_size=4))
    if rec["domain"] == "code":
        rec["tests"] = draw(st.sampled_from([[{"input": "", "output": "1\n"}], [], [{"input": 1}]]))
    for key in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=2)):
        if draw(st.booleans()):
            rec.pop(key, None)
        else:
            rec[key] = draw(JSON_VALUES)
    text = json.dumps(rec, ensure_ascii=draw(st.booleans()))
    cut = draw(st.integers(0, 3))
    return text[: len(text) - cut] if cut else text  # sometimes truncated JSON


LINES = st.lists(st.one_of(mutated_record(), st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
                           st.just(json.dumps(VALID))), min_size=1, max_size=6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=LINES)
def test_every_line_ends_somewhere_and_malformed_is_named(tmp_path_factory, lines):
    tmp = tmp_path_factory.mktemp("prop")
    (tmp / "t.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = FilterCfg(verify_timeout_s=1, code_cpu_s=1, code_wall_s=2, decontaminate=[])
    rep = trace_filter.run(tmp / "t.jsonl", tmp / "out", cfg, workers=1, progress=False)
    out = []
    for name in ("accepted.jsonl", "rejected.jsonl"):
        # split on "\n" only: JSON strings may hold U+0085 or U+2028, which splitlines() breaks on
        out += [json.loads(x) for x in (tmp / "out" / name).read_text(encoding="utf-8").split("\n") if x]
    non_blank = [x for x in lines if x.strip()]
    assert len(out) == rep["input"] == len(non_blank)
    malformed = sum(not isinstance(parse_record(x, Trace), Trace) for x in non_blank)
    assert sum("malformed_record" in r["verdict"]["reasons"] for r in out) == malformed
    for r in out:
        assert all(not reason.startswith("judge_error") for reason in r["verdict"]["reasons"]), r
        assert r["verdict"]["accepted"] == (not r["verdict"]["reasons"])


@settings(max_examples=150, deadline=None)
@given(completion=COMPLETIONS, domain=st.sampled_from(["math", "choice"]))
def test_judge_never_raises_on_random_completions(completion, domain):
    trace = Trace.model_validate({**VALID, "completion": completion, "domain": domain, "choices": ["1", "37"]})
    reasons = trace_filter.judge(trace, FilterCfg(verify_timeout_s=1))
    assert isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)
