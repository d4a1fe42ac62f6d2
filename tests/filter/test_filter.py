import json

import pytest
from typer.testing import CliRunner

from distill.filter import judging as trace_filter
from distill.filter.verify import check_answer, extract_answer, is_correct, words_to_number
from distill.r1 import last_boxed, split_r1
from distill.recipe import FilterCfg
from distill.records import Trace, read_json, write_jsonl

PROBLEM = "Mia has 14 shells and finds 23 more on the beach. How many shells does Mia have now?"


def trace(completion: str, answer: str = "37", pid: str = "p1", idx: int = 0, finish: str = "stop",
          problem: str = PROBLEM, **kw) -> dict:
    return {"problem_id": pid, "sample_index": idx, "problem": problem,
            "answer": answer, "domain": kw.pop("domain", "math"), "teacher": "deepseek-r1",
            "completion": completion, "finish_reason": finish, **kw}


# A realistic R1 trace: the template put "<think>\n" in the prompt, so the completion opens mid-thought.
GOOD = ("<think>\nOkay, so Mia starts with 14 shells. Then she finds 23 more. To get the total I add "
        "them: 14 + 23. Let me do that step by step: 14 + 20 = 34, and 34 + 3 = 37. Wait, let me double-check "
        "by adding the other way: 23 + 14 = 37. Yes, that matches.\n</think>\n\n"
        "Mia has 14 + 23 = 37 shells.\n\n\\boxed{37}")


def _judge(completion: str, answer: str = "37", cfg: FilterCfg | None = None, **kw) -> list[str]:
    return trace_filter.judge(Trace.model_validate(trace(completion, answer, **kw)), cfg or FilterCfg())


def test_split_with_and_without_the_opening_tag():
    with_tag = split_r1(GOOD)
    without = split_r1(GOOD.removeprefix("<think>\n"))  # R1 templates put <think> in the prompt
    assert with_tag.form == without.form == []
    assert with_tag.reasoning.strip() == without.reasoning.strip()
    assert extract_answer(without.answer, "math") == "37"
    assert split_r1("<think> still going").form == ["unclosed_think"]
    assert split_r1("no tags at all, \\boxed{3}").form == ["unclosed_think"]
    assert split_r1("<think> a </think> b <think> c </think> d").form == ["multiple_think"]
    assert split_r1("<think>  </think> \\boxed{1}").form == ["empty_think"]
    # DeepSeek's API returns the reasoning separately: the completion is then the answer alone.
    api = split_r1("\\boxed{37}", reasoning_content="14 + 23 = 37")
    assert api.form == [] and api.reasoning == "14 + 23 = 37"


def test_nested_boxes_and_last_box_wins():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{\\sqrt{2}}}") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\boxed{\\boxed{5}}") == "5"  # the last box to open is the inner one
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None
    assert _judge("<think>\nhalf is 1/2\n</think>\n\\boxed{\\boxed{\\frac{1}{2}}}", "0.5") == []


def test_math_fallbacks_and_words_rule():
    assert extract_answer("\n\nThe final answer is $\\frac{3}{4}$.", "math") == "\\frac{3}{4}"
    assert extract_answer("\n\n**Answer:** 12.5", "math") == "12.5"
    assert extract_answer("\n\nShe has 37 shells.", "math") == "37"  # one number in a short answer
    assert extract_answer("\n\n14 + 23 = 37", "math") is None  # several numbers: ambiguous
    assert words_to_number("thirty-seven") == 37
    assert words_to_number("one hundred and five") == 105
    assert words_to_number("minus two") == -2
    assert words_to_number("thirty-seven shells") is None  # words inside a phrase are not read
    words = "<think>\n14 + 23 is 37.\n</think>\n\nThe answer is \\boxed{thirty-seven}."
    assert _judge(words) == []
    assert _judge(words, answer="thirty-seven") == []
    assert _judge(words.replace("thirty", "forty")) == ["wrong_answer"]


def test_reasons_for_realistic_traces():
    assert _judge(GOOD) == []
    assert _judge(GOOD.removeprefix("<think>\n")) == []
    assert _judge(GOOD.replace("{37}", "{38}")) == ["wrong_answer"]
    no_answer = GOOD.replace("Mia has 14 + 23 = 37 shells.\n\n\\boxed{37}", "So that is the total.")
    assert _judge(no_answer) == ["no_answer"]
    assert "truncated" in _judge(GOOD, finish="length")
    assert _judge("<think>\nOkay, Mia starts with 14 and then") == ["unclosed_think", "no_answer"]
    assert _judge("<think>\na</think><think>b\n</think>\n\\boxed{37}") == ["multiple_think"]
    assert _judge("<think>\n\n</think>\n\n\\boxed{37}") == ["empty_think"]
    frac = "<think>\nhalf of one\n</think>\n\\boxed{\\frac{1}{2}}"
    assert _judge(frac, answer="0.5") == []
    assert _judge(frac, answer="\\frac{2}{4}") == []
    assert _judge(frac.replace("\\frac{1}{2}", "0.50"), answer="\\frac{1}{2}") == []
    assert _judge(frac, answer="0.51") == ["wrong_answer"]
    assert _judge(GOOD, answer="") == ["unparseable_gold"]


def test_quality_reasons():
    loop = "<think>\n" + "I will add the numbers again now. " * 40 + "\n</think>\n\\boxed{37}"
    assert _judge(loop) == ["repetition"]
    lines = "<think>\n" + "Wait, let me recount the shells one more time.\n" * 6 + "</think>\n\\boxed{37}"
    assert _judge(lines) == ["repetition"]
    mixed = GOOD.replace("Yes, that matches.", "所以米娅现在一共有三十七个贝壳，这个结果是正确的，我们再检查一遍加法。")
    assert _judge(mixed) == ["language_mixing"]
    # Greek letters are mathematics, not another language.
    assert _judge(GOOD.replace("Yes,", "With α = 14 and β = 23, α + β = 37. Yes,")) == []
    assert _judge(GOOD, cfg=FilterCfg(max_completion_tokens=20)) == ["too_long"]
    assert _judge(GOOD, cfg=FilterCfg(max_completion_tokens=20), completion_tokens=10) == []
    assert _judge(GOOD, cfg=FilterCfg(min_completion_tokens=500)) == ["too_short"]


def test_choice_by_letter_or_option_text():
    opts = {"domain": "choice", "choices": ["Mercury", "Venus", "Earth", "Mars"]}
    base = "<think>\nThe hottest planet is Venus because of its thick atmosphere.\n</think>\n\n"
    assert _judge(base + "\\boxed{B}", "B", **opts) == []
    assert _judge(base + "\\boxed{(B)}", "B", **opts) == []
    assert _judge(base + "\\boxed{\\text{Venus}}", "B", **opts) == []
    assert _judge(base + "The answer is (B).", "B", **opts) == []
    assert _judge(base + "The answer is Venus.", "B", **opts) == []
    assert _judge(base + "\\boxed{C}", "B", **opts) == ["wrong_answer"]
    assert _judge(base + "A thick atmosphere heats it.", "B", **opts) == ["no_answer"]
    assert check_answer("choice", "Venus", "B", opts["choices"]) == []  # gold given as text


def test_code_answers_run_against_tests():
    tests = [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6\n"}]
    body = "<think>\nRead two ints and print the sum.\n</think>\n\n```python\na, b = map(int, input().split())\nprint({})\n```"
    code = {"domain": "code", "tests": tests, "problem": "Read two integers and print their sum."}
    assert _judge(body.format("a + b"), "", **code) == []
    assert _judge(body.format("a - b"), "", **code) == ["tests_failed"]
    assert _judge("<think>\nhmm\n</think>\n\nJust add them.", "", **code) == ["no_answer"]
    assert is_correct(body.format("a + b"), "code", "", tests=tests)


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_filter_run_writes_every_line_once_with_reasons(tmp_path):
    src = tmp_path / "traces.jsonl"
    short = "<think>\n14 + 23 = 37\n</think>\n\\boxed{37}"
    rows = [trace(GOOD, idx=0), trace(GOOD, idx=1), trace(GOOD.replace("{37}", "{36}"), idx=2),
            trace(short, idx=3), trace(short, idx=3)]
    write_jsonl(src, rows)
    with open(src, "a") as f:
        f.write("{broken json\n")
        f.write('{"problem_id": "p9"}\n')
        f.write('{"problem_id": "p1", "sample_index": 9, "problem": "x", "answer": "1", "domain": "chem')  # torn
    rep = trace_filter.run(src, tmp_path / "out", FilterCfg(max_per_problem=1), workers=1, progress=False)
    accepted, rejected = _lines(tmp_path / "out/accepted.jsonl"), _lines(tmp_path / "out/rejected.jsonl")
    assert rep["input"] == 8 and rep["accepted"] + rep["rejected"] == 8
    assert len(accepted) == 1 and accepted[0]["sample_index"] == 3  # the shortest correct one
    assert accepted[0]["verdict"] == {"accepted": True, "reasons": []}
    reasons = sorted(r for x in rejected for r in x["verdict"]["reasons"])
    assert reasons == ["duplicate", "duplicate", "malformed_record", "malformed_record", "malformed_record",
                       "over_per_problem_limit", "wrong_answer"]
    bad = [x for x in rejected if "line" in x]
    assert [b["line"] for b in bad] == [6, 7, 8] and bad[0]["raw"] == "{broken json"
    report = read_json(tmp_path / "out/report.json")
    assert report["by_reason"]["wrong_answer"] == 1 and report["lengths"]["accepted"]["count"] == 1
    assert report["by_domain"]["math"] == {"input": 5, "accepted": 1, "rejected": 4}
    md = (tmp_path / "out/report.md").read_text()
    assert "| `wrong_answer` | 1 |" in md
    for png in report["plots"]:
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"


def test_duplicates_contamination_and_pass_rate_band(tmp_path):
    from distill.filter.dedup import BUNDLED
    from distill.records import load_problems

    eval_problem = next(p for p in load_problems(BUNDLED) if p.split == "eval")
    near = PROBLEM.replace("on the beach", "at the beach")  # same numbers, reworded: a near duplicate
    other = "Zed has 59 kites and gets 24 more. How many kites does Zed have now?"
    rows = [trace(GOOD, pid="p1", idx=0), trace(GOOD, pid="p1", idx=1, completion_tokens=5),
            trace(GOOD, pid="copy", idx=0, problem=PROBLEM.upper()),  # exact duplicate, other source
            trace(GOOD, pid="near", idx=0, problem=near),
            trace(f"<think>\nworked out\n</think>\n\\boxed{{{eval_problem.answer}}}", pid="leak", idx=0,
                  problem=eval_problem.problem, answer=eval_problem.answer),
            trace("<think>\n59 + 24 = 83\n</think>\n\\boxed{83}", pid="other", idx=0, problem=other, answer="83"),
            trace("<think>\n59 + 24 = 84\n</think>\n\\boxed{84}", pid="other", idx=1, problem=other, answer="83"),
            trace("<think>\n59 + 24 = 82\n</think>\n\\boxed{82}", pid="other", idx=2, problem=other, answer="83")]
    write_jsonl(tmp_path / "t.jsonl", rows)
    cfg = FilterCfg(pass_rate_band=[0.5, 1.0], decontaminate=["bundled"])
    rep = trace_filter.run(tmp_path / "t.jsonl", tmp_path / "out", cfg, workers=1, progress=False)
    verdicts = {(r["problem_id"], r["sample_index"]): r["verdict"]["reasons"]
                for r in _lines(tmp_path / "out/accepted.jsonl") + _lines(tmp_path / "out/rejected.jsonl")}
    assert verdicts[("copy", 0)] == ["duplicate"] and verdicts[("near", 0)] == ["duplicate"]
    assert verdicts[("leak", 0)] == ["contaminated"]
    assert verdicts[("other", 0)] == ["pass_rate_out_of_band"]  # 1 of 3 right: below the band
    assert verdicts[("p1", 0)] == [] and verdicts[("p1", 1)] == ["duplicate"]  # the same completion twice
    assert rep["problems"]["duplicate_of"] == {"copy": "p1", "near": "p1"}
    assert rep["problems"]["contaminated_ids"] == ["leak"] and rep["problems"]["eval_sets"]["bundled"] > 0
    # Templated problems with other numbers are other problems, not duplicates.
    assert "p1" not in rep["problems"]["duplicate_of"] and "other" not in rep["problems"]["duplicate_of"]


def test_output_does_not_depend_on_worker_count(tmp_path):
    rows = []
    for i in range(24):
        a, b = 10 + i, 20 + i
        answer = str(a + b + (i % 3 == 0))  # every third one wrong
        rows.append(trace(f"<think>\n{a} + {b} = {a + b}\n</think>\n\\boxed{{{a + b}}}", answer=answer,
                          pid=f"q{i % 8}", idx=i // 8, problem=f"Add {a} and {b} marbles, how many now in total?"))
    write_jsonl(tmp_path / "t.jsonl", rows)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        trace_filter.run(tmp_path / "t.jsonl", out, FilterCfg(max_per_problem=2), workers=workers, progress=False)
        outs.append(((out / "accepted.jsonl").read_text(), (out / "rejected.jsonl").read_text()))
    assert outs[0] == outs[1]
    assert outs[0][0] and outs[0][1]


def test_cli_filter(tmp_path):
    from distill.cli import app

    write_jsonl(tmp_path / "t.jsonl", [trace(GOOD)])
    res = CliRunner().invoke(app, ["filter", str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "accepted 1 / 1" in res.output
    missing = CliRunner().invoke(app, ["filter", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")])
    assert missing.exit_code != 0 and "not found" in str(missing.exception)


@pytest.mark.parametrize("bad", ["MATH-500-not-a-set", "missing.jsonl"])
def test_unavailable_eval_set_is_a_clear_error(tmp_path, monkeypatch, bad):
    from distill.errors import DistillError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here; fail at once rather than retrying

    write_jsonl(tmp_path / "t.jsonl", [trace(GOOD)])
    with pytest.raises(DistillError, match="decontaminat|not found"):
        trace_filter.run(tmp_path / "t.jsonl", tmp_path / "o", FilterCfg(decontaminate=[bad]), workers=1,
                         progress=False)


def _stuck_judge(trace, cfg):
    """Stand-in for a pathological expression that math-verify's alarm cannot interrupt (a long
    C-level computation): signals are ignored and the worker just hangs."""
    import signal
    import time

    if trace.problem_id == "stuck":
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(600)
    return []


def test_a_stuck_worker_is_killed_and_replaced(tmp_path, monkeypatch):
    # The workers are forked, so they see the patched judge and deadline.
    monkeypatch.setattr(trace_filter, "judge", _stuck_judge)
    monkeypatch.setattr(trace_filter, "deadline_s", lambda trace, cfg: 1.0)
    rows = [trace(GOOD, pid=f"ok{i}", problem=f"Problem number {i} about shells") for i in range(6)]
    rows.insert(2, trace(GOOD, pid="stuck", problem="A pathological problem"))
    write_jsonl(tmp_path / "t.jsonl", rows)
    rep = trace_filter.run(tmp_path / "t.jsonl", tmp_path / "out", FilterCfg(decontaminate=[]), workers=2,
                           progress=False)
    rejected = _lines(tmp_path / "out/rejected.jsonl")
    assert [(r["problem_id"], r["verdict"]["reasons"]) for r in rejected] == [("stuck", ["verify_timeout"])]
    assert rep["accepted"] == 6  # the traces after the stuck one were judged by a replacement worker
    assert rep["run"]["slowest_trace_s"] <= 1.0


def test_decontamination_against_a_dataset_folder(tmp_path, monkeypatch):
    """Hub eval sets (MATH-500, AIME, GPQA) load through `datasets.load_dataset`; no hub here, so
    the same call reads a local folder laid out like a hub dataset."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    leaked = "Let $f(x) = 3x^2 - 5$. What is the value of $f(f(1))$? Express your answer as an integer."
    (tmp_path / "math500").mkdir()
    (tmp_path / "math500" / "test.jsonl").write_text(json.dumps({"problem": leaked, "answer": "7"}) + "\n")
    rows = [trace("<think>\nf(1) = -2, f(-2) = 7\n</think>\n\\boxed{7}", "7", pid="m1",
                  problem="Let $f(x) = 3x^2 - 5$. What is the value of $f(f(1))$?"),
            trace(GOOD, pid="p1")]
    write_jsonl(tmp_path / "t.jsonl", rows)
    cfg = FilterCfg(decontaminate=[str(tmp_path / "math500"), "bundled"])
    rep = trace_filter.run(tmp_path / "t.jsonl", tmp_path / "o", cfg, workers=1, progress=False)
    assert rep["problems"]["contaminated_ids"] == ["m1"]  # an 8-gram of the eval problem, same numbers
    assert rep["problems"]["eval_sets"][str(tmp_path / "math500")] == 1
