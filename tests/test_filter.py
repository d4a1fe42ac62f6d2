import json

from distill import filter as trace_filter
from distill.recipe import FilterCfg
from distill.records import Trace, read_json, write_jsonl
from distill.verify import extract_answer, last_boxed, split_r1


def trace(completion: str, answer: str = "37", pid: str = "p1", idx: int = 0, finish: str = "stop",
          **kw) -> dict:
    return {"problem_id": pid, "sample_index": idx, "problem": "Mia has 14 shells and finds 23 more...",
            "answer": answer, "domain": kw.pop("domain", "math"), "teacher": "deepseek-r1",
            "completion": completion, "finish_reason": finish, **kw}


GOOD = "<think>\nMia starts with 14 and finds 23, so 14 + 23 = 37.\n</think>\n\nShe has \\boxed{37} shells."


def test_split_with_and_without_the_opening_tag():
    with_tag = split_r1(GOOD)
    without = split_r1(GOOD.removeprefix("<think>\n"))  # R1 templates put <think> in the prompt
    assert with_tag.form == without.form == []
    assert with_tag.reasoning.strip() == without.reasoning.strip()
    assert extract_answer(without.answer, "math") == "37"
    assert split_r1("<think> still going").form == ["unclosed_think"]
    assert split_r1("<think> a </think> b <think> c </think> d").form == ["multiple_think"]
    assert split_r1("<think>  </think> \\boxed{1}").form == ["empty_think"]


def test_nested_boxes_and_last_box_wins():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{\\sqrt{2}}}") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("no box") is None


def _judge(completion: str, answer: str = "37", **kw) -> list[str]:
    return trace_filter.judge(Trace.model_validate(trace(completion, answer, **kw)), FilterCfg())


def test_reasons_for_realistic_traces():
    assert _judge(GOOD) == []
    assert _judge(GOOD.replace("{37}", "{38}")) == ["wrong_answer"]
    assert _judge(GOOD.replace("\\boxed{37}", "37")) == ["no_answer"]
    assert "truncated" in _judge(GOOD, finish="length")
    assert _judge("<think>\nhalf way") == ["unclosed_think", "no_answer"]
    frac = "<think>\nhalf of one\n</think>\n\\boxed{\\frac{1}{2}}"
    assert _judge(frac, answer="0.5") == []
    assert _judge(frac, answer="\\frac{2}{4}") == []
    loop = "<think>\n" + "I will add the numbers again now. " * 40 + "\n</think>\n\\boxed{37}"
    assert _judge(loop) == ["repetition"]


def test_filter_run_writes_every_line_once_with_reasons(tmp_path):
    src = tmp_path / "traces.jsonl"
    rows = [trace(GOOD, idx=0), trace(GOOD, idx=1), trace(GOOD.replace("{37}", "{36}"), idx=2),
            trace("<think>\nshort\n</think>\n\\boxed{37}", idx=3)]
    write_jsonl(src, rows)
    with open(src, "a") as f:
        f.write("{broken json\n")
    rep = trace_filter.run(src, tmp_path / "out", FilterCfg(max_per_problem=1))
    accepted = [json.loads(x) for x in (tmp_path / "out/accepted.jsonl").read_text().splitlines()]
    rejected = [json.loads(x) for x in (tmp_path / "out/rejected.jsonl").read_text().splitlines()]
    assert rep["input"] == 5 and rep["accepted"] + rep["rejected"] == 5
    assert len(accepted) == 1 and accepted[0]["sample_index"] == 3  # the shortest correct one
    assert accepted[0]["verdict"] == {"accepted": True, "reasons": []}
    reasons = sorted(r for x in rejected for r in x["verdict"]["reasons"])
    assert reasons == ["duplicate", "malformed_record", "over_per_problem_limit", "wrong_answer"]
    bad = next(x for x in rejected if "line" in x)
    assert bad["line"] == 5 and bad["raw"] == "{broken json"
    report = read_json(tmp_path / "out/report.json")
    assert report["by_reason"]["wrong_answer"] == 1 and report["lengths"]["accepted"]["count"] == 1
