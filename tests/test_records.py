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


def test_streamed_whole_file_write_is_atomic_and_hashed(tmp_path):
    import hashlib

    from distill.records import JsonlWriter

    path = tmp_path / "accepted.jsonl"
    with JsonlWriter(path) as out:
        out.write(_trace(0))
        out.write(json.dumps(_trace(1)))  # a line that is already JSON
    assert out.count == 2 and out.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with JsonlWriter(path) as out:
            out.write(_trace(2))
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == before and not list(tmp_path.glob(".accepted.jsonl.*"))


def test_fingerprint_sees_appends_and_rewrites_without_reading_the_file(tmp_path):
    import os

    from distill.records import fingerprint

    path = tmp_path / "traces.jsonl"
    write_jsonl(path, [_trace(i) for i in range(3)])
    first = fingerprint(path)
    assert fingerprint(path) == first and fingerprint(tmp_path / "none.jsonl") == "missing"
    with JsonlAppender(path) as out:
        out.write(_trace(3))
    appended = fingerprint(path)
    assert appended != first
    data = path.read_bytes()
    path.write_bytes(data.replace(b"p1", b"p9"))  # same size, new content
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    assert fingerprint(path) not in (first, appended)


def test_writer_lock_refuses_a_second_process_and_dies_with_its_holder(tmp_path):
    import subprocess
    import sys
    import time

    from distill.records import WriterLock

    path = tmp_path / "traces.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from distill.records import WriterLock; "
                               f"lock = WriterLock({str(path)!r}, 'sampler').__enter__(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DistillError, match=rf"being written by sampler pid {holder.pid}"):
            with WriterLock(path, "sampler"):
                pass
    finally:
        holder.kill()  # as kill -9: the kernel releases the lock
        holder.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            with WriterLock(path, "sampler"), WriterLock(path, "sampler"):  # re-entrant in one process
                break
        except DistillError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
