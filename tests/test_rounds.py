"""STaR rounds: the union a later round trains on, and the per-round accuracy in the report.
(Two real rounds through the pipeline: tests/test_pipeline.py.)"""

from run_folder import make_run

from distill import report
from distill.records import Trace, write_json, write_jsonl
from distill.rounds import union
from distill.runs import RunData, accuracy_rows


def _trace(pid: str, index: int, text: str, tokens: int, teacher: str) -> Trace:
    return Trace(problem_id=pid, sample_index=index, problem=f"problem {pid}", answer="4", teacher=teacher,
                 completion=f"<think>\n{text}\n</think>\n\n\\boxed{{4}}", completion_tokens=tokens)


def test_union_keeps_both_rounds_drops_repeats_and_keeps_the_k_shortest(tmp_path):
    teacher = [_trace("a", 0, "two and two make four", 30, "teacher"), _trace("a", 1, "2 + 2 = 4", 20, "teacher"),
               _trace("b", 0, "one and three make four", 25, "teacher")]
    student = [_trace("a", 0, "2 + 2 = 4.", 9, "student-1"),   # the teacher's trace again (punctuation aside)
               _trace("b", 0, "1 + 3 = 4", 10, "student-1"),   # new and shortest for b
               _trace("c", 1, "3 + 1 = 4", 12, "student-1")]   # a problem the teacher never solved
    write_jsonl(tmp_path / "r1.jsonl", teacher)
    write_jsonl(tmp_path / "r2.jsonl", student)

    both = union([tmp_path / "r1.jsonl", tmp_path / "r2.jsonl"], k=None)
    texts = {(t.problem_id, t.completion.split("\n")[1]) for t in both}
    assert texts == {("a", "two and two make four"), ("a", "2 + 2 = 4"), ("b", "one and three make four"),
                     ("b", "1 + 3 = 4"), ("c", "3 + 1 = 4")}
    assert len(both) == 5  # the student's repeat of a teacher trace is dropped, the first one kept
    assert next(t for t in both if "2 + 2" in t.completion).teacher == "teacher"
    assert len({t.key for t in both}) == 5  # renumbered: (problem_id, sample_index) unique again

    shortest = union([tmp_path / "r1.jsonl", tmp_path / "r2.jsonl"], k=1)
    assert {(t.problem_id, t.completion_tokens, t.teacher) for t in shortest} == {
        ("a", 20, "teacher"), ("b", 10, "student-1"), ("c", 12, "student-1")}
    assert all(t.sample_index == 0 and t.verdict is None for t in shortest)


def test_report_shows_accuracy_per_round(tmp_path):
    run = make_run(tmp_path, student_pass=0.45)
    write_json(run / "rounds.json", [
        {"round": 1, "student": "student", "trained_on": 5, "new_traces_from": "teacher",
         "eval": {"problems": 40, "n": 1, "pass@1": 0.3}},
        {"round": 2, "student": "rounds/2/student", "trained_on": 12, "new_traces_from": "student of round 1",
         "accepted": 9}])
    rows = accuracy_rows(RunData(run))
    assert [(r["label"], r["pass@1"]) for r in rows[:3]] == [
        ("base", 0.1), ("student (round 1)", 0.3), ("student (round 2)", 0.45)]
    text = report.build(run).read_text()
    section = text.split("## STaR rounds", 1)[1].split("##", 1)[0]
    assert "| 1 | teacher | 5 | 5 | 30.0% |" in section
    assert "| 2 | student of round 1 | 9 | 12 | 45.0% ± 7.9% |" in section  # the run's student, with its SE
