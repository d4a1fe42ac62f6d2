import json

import pytest

from distill.errors import DistillError
from distill.records import (
    BadLine,
    JsonlAppender,
    Problem,
    Trace,
    load_problems,
    read_records,
    repair_tail,
    write_jsonl,
)


def _trace(i: int) -> dict:
    return {"problem_id": f"p{i}", "sample_index": 0, "problem": "1+1?", "answer": "2", "domain": "math",
            "teacher": "t", "completion": "<think>\n1+1=2\n</think>\n\\boxed{2}", "finish_reason": "stop"}


def test_malformed_lines_are_reported_with_a_reason(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(_trace(0)) + "\n" + "{not json\n" + json.dumps({"problem_id": "x"}) + "\n[1]\n")
    recs = list(read_records(path, Trace))
    assert isinstance(recs[0], Trace)
    assert [type(r) for r in recs[1:]] == [BadLine, BadLine, BadLine]
    assert recs[1].line == 2 and recs[1].reason.startswith("not JSON")
    assert "sample_index" in recs[2].reason or "Field required" in recs[2].reason
    assert recs[3].reason == "not a JSON object"


def test_torn_last_line_is_dropped_then_repaired(tmp_path):
    path = tmp_path / "t.jsonl"
    whole = json.dumps(_trace(0)) + "\n"
    path.write_text(whole + json.dumps(_trace(1))[:25])  # a writer killed mid-line
    assert [r.problem_id for r in read_records(path, Trace)] == ["p0"]
    with JsonlAppender(path) as out:
        out.write(_trace(2))
    assert [r.problem_id for r in read_records(path, Trace)] == ["p0", "p2"]
    assert path.read_text().startswith(whole)
    assert repair_tail(path) == 0


def test_load_problems_rejects_duplicates_and_bad_lines(tmp_path):
    good = {"id": "a", "problem": "q", "answer": "1"}
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [good, good])
    with pytest.raises(DistillError, match="appears twice"):
        load_problems(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "problem": "q", "answer": "1",
                                                          "domain": "code"}) + "\n")
    with pytest.raises(DistillError, match=r"p.jsonl:2: .*tests"):
        load_problems(path)


def test_write_jsonl_is_atomic(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [Problem(id="a", problem="q", answer="1")])
    assert [p.id for p in load_problems(path)] == ["a"]
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no temp file left behind


def test_atomic_writes_are_readable_by_others(tmp_path):
    import os
    import stat

    path = tmp_path / "m.json"
    from distill.records import write_json

    write_json(path, {"a": 1})
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH
