"""The filter at scale: this run's traces only, outputs hashed as written (no re-read for stage
keys), duplicate problems found through the on-disk LSH index as through exact comparison, and
reasoning counted once. Memory itself is measured by bench/scale.py, not asserted here."""

import hashlib
import json
import sqlite3

from distill.filter import judging as trace_filter
from distill.filter.dedup import ProblemIndex, find_duplicates
from distill.recipe import FilterCfg
from distill.records import Trace, write_jsonl

CFG = FilterCfg(decontaminate=[])


def trace(pid: str, idx: int, settings: str | None = "s1", answer: str = "37", **kw) -> dict:
    row = {"problem_id": pid, "sample_index": idx, "problem": f"Mia has 14 shells and finds 23 more ({pid}).",
           "answer": answer, "teacher": "r1", "finish_reason": "stop",
           "completion": f"<think>\n14 + 23 = 37, checked twice for {pid}#{idx}.\n</think>\n\n\\boxed{{37}}", **kw}
    if settings:
        row["provenance"] = {"settings": settings, "prompt": "x"}
    return row


def _out(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_only_this_runs_traces_are_inputs(tmp_path):
    rows = [trace("a", 0), trace("a", 1), trace("a", 2), trace("b", 0), trace("gone", 0),
            trace("a", 3, settings="other"), trace("b", 1, settings=None)]
    write_jsonl(tmp_path / "t.jsonl", rows)
    selection = trace_filter.Selection(settings="s1", problems={"a", "b"}, n=2)
    cfg = FilterCfg(decontaminate=[], dedup=False)  # the problems differ only in their id
    rep = trace_filter.run(tmp_path / "t.jsonl", tmp_path / "o", cfg, workers=1, progress=False, selection=selection)
    kept = sorted((r["problem_id"], r["sample_index"]) for r in _out(tmp_path / "o/accepted.jsonl"))
    assert kept == [("a", 0), ("a", 1), ("b", 0)] and not _out(tmp_path / "o/rejected.jsonl")
    assert rep["input"] == 3 and rep["skipped"] == {"not_this_run": 4}
    assert rep["provenance"] == {"s1": 3}


def test_outputs_are_hashed_as_written_and_keyed_without_a_reread(tmp_path):
    write_jsonl(tmp_path / "t.jsonl", [trace("a", 0), trace("a", 1, answer="36")])
    (tmp_path / "o").mkdir()
    for left in (".index.abc.sqlite", ".accepted.jsonl.abc.tmp"):  # what a killed filter leaves behind
        (tmp_path / "o" / left).write_text("x")
    rep = trace_filter.run(tmp_path / "t.jsonl", tmp_path / "o", CFG, workers=1, progress=False)
    for name in ("accepted.jsonl", "rejected.jsonl"):
        data = (tmp_path / "o" / name).read_bytes()
        assert rep["outputs"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "lines": 1, "bytes": len(data)}
    assert trace_filter.accepted_digest(tmp_path / "o") == rep["outputs"]["accepted.jsonl"]["sha256"]
    assert not list((tmp_path / "o").glob(".*"))  # no index or temp file left behind, nor older ones


def test_reasoning_kept_apart_counts_once_against_too_long():
    reasoning = ("Fourteen plus twenty is thirty-four. Then thirty-four plus three is thirty-seven. Checking the "
                 "other way, twenty-three plus fourteen is also thirty-seven, so the total is right.")
    both = Trace.model_validate(trace("a", 0, completion=f"<think>\n{reasoning}\n</think>\n\n\\boxed{{37}}",
                                      reasoning_content=reasoning))
    apart = Trace.model_validate(trace("a", 0, completion="\\boxed{37}", reasoning_content=reasoning))
    # The same text plus the tags' 7 marks ("<", "think", ">", "<", "/", "think", ">"), not the reasoning twice.
    assert trace_filter.n_tokens(both) == trace_filter.n_tokens(apart) + 7
    cfg = FilterCfg(max_completion_tokens=trace_filter.n_tokens(both) + 2, decontaminate=[])
    assert trace_filter.judge(both, cfg) == [] and trace_filter.judge(apart, cfg) == []


WORDS = ("river mountain goat village baker autumn leaf ancient stone bridge harbour crane frozen lake desert "
         "fox orchard lantern meadow falcon copper violin garden tower marble candle shadow island forest "
         "thunder velvet compass ladder ribbon pepper walnut saddle kettle quarry beacon timber").split()


def _paraphrases(k: int) -> list[tuple[str, str]]:
    """Problems without numbers (one large bucket, so the LSH path), each stated twice."""
    import random

    rng = random.Random(0)
    out = []
    for i in range(k):
        words = rng.sample(WORDS, 14)
        base = "Explain how the " + " ".join(words) + " relate to each other"
        out += [(f"p{i}", base), (f"p{i}-again", base.replace("Explain how", "Explain briefly how"))]
    return out


def test_near_duplicates_through_the_on_disk_lsh_index(tmp_path):
    problems = _paraphrases(30)  # 60 problems in one bucket: past `exact_below`, candidates come from LSH bands
    dups = find_duplicates(problems, threshold=0.8)
    assert dups == {f"p{i}-again": f"p{i}" for i in range(30)}
    # The same answer from an index kept in a file, and from comparing every pair exactly.
    index = ProblemIndex(sqlite3.connect(tmp_path / "p.sqlite"), threshold=0.8, exact_below=10**9)
    exact = {pid: kept for pid, text in problems if (kept := index.add(pid, text)) is not None}
    assert exact == dups
