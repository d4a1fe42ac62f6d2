"""The `dataset` backend: published R1 trace sets imported into our trace records. Each layout is
written here as a small local file in the hub's column layout (no hub is reachable here); the
same `datasets` code path reads a hub name."""

import json

import pytest

from distill.errors import DistillError
from distill.recipe import load_recipe
from distill.records import BadLine, Trace, read_records
from distill.sample import sampler as sample
from distill.sample.teacher.dataset import DatasetTeacher, detect_layout

OPENR1 = [
    {"problem": "What is $2+3$?", "solution": "$2+3=5$, so \\boxed{5}.", "answer": "5", "problem_type": "Algebra",
     "question_type": "math-word-problem", "source": "olympiads", "uuid": "u-1",
     "is_reasoning_complete": [True, True], "finish_reasons": ["stop", "length"],
     "generations": ["<think>\n2 plus 3 is 5.\n</think>\n\nThe sum is $\\boxed{5}$.", "<think>\nHmm, 2+3"],
     "correctness_math_verify": [True, False], "correctness_llama": None, "correctness_count": 1,
     "messages": [{"role": "user", "content": "What is $2+3$?"}, {"role": "assistant", "content": "..."}]},
    {"problem": "Compute $4 \\cdot 6$.", "solution": "\\boxed{24}", "answer": "24", "problem_type": "Algebra",
     "question_type": "math-word-problem", "source": "amc", "uuid": "u-2", "is_reasoning_complete": [True],
     "finish_reasons": [None], "generations": ["4 times 6 is 24.\n</think>\n\n\\boxed{24}"],
     "correctness_math_verify": [True], "correctness_llama": None, "correctness_count": 1, "messages": []},
]
SYSTEM = "Your role as an assistant involves thoroughly exploring questions ..."
CONVERSATIONS = [
    {"system": SYSTEM, "conversations": [
        {"from": "user", "value": "Return your final response within \\boxed{}. What is 7 - 2?"},
        {"from": "assistant", "value": "<|begin_of_thought|>\n\nSeven minus two is five.\n\n<|end_of_thought|>\n\n"
                                       "<|begin_of_solution|>\n\nThe answer is \\boxed{5}.\n\n<|end_of_solution|>"}]},
    {"system": SYSTEM, "conversations": [
        {"from": "user", "value": "What is 3 * 3?"},
        {"from": "assistant", "value": "<|begin_of_thought|>\n\n3 * 3 = 9.\n\n<|end_of_thought|>\n\n"
                                       "<|begin_of_solution|>\n\n\\boxed{9}\n\n<|end_of_solution|>"}]},
]
OPENTHOUGHTS_META = [
    {"problem": "Find $x$ if $x + 1 = 3$.", "deepseek_reasoning": "Subtract one: x = 2.",
     "deepseek_solution": "$x = \\boxed{2}$", "ground_truth_solution": "So $x=\\boxed{2}$.", "domain": "math",
     "source": "numina_math", "test_cases": None, "starter_code": None},
    {"problem": "Print the sum of two integers.", "deepseek_reasoning": "Read a and b, print a+b.",
     "deepseek_solution": "```python\na,b=map(int,input().split())\nprint(a+b)\n```", "ground_truth_solution": None,
     "domain": "code", "source": "taco", "test_cases": json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}),
     "starter_code": ""},
    {"problem": "A code task without tests.", "deepseek_reasoning": "...", "deepseek_solution": "pass",
     "ground_truth_solution": None, "domain": "code", "source": "x", "test_cases": None, "starter_code": ""},
]
S1K = [
    {"solution": "The answer is 12.", "question": "What is 5 + 7?", "cot_type": "math", "source_type": "AI-MO/NuminaMath",
     "metadata": "{}", "gemini_thinking_trajectory": "g", "gemini_attempt": "g", "deepseek_grade": "Yes",
     "deepseek_thinking_trajectory": "5 + 7 = 12.", "deepseek_attempt": "**Answer:** $\\boxed{12}$"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _import(tmp_path, ref, name="t", **teacher):
    extra = "".join(f", {k}: {v}" for k, v in teacher.items())
    (tmp_path / f"{name}.yaml").write_text(f"""
name: {name}
student: {{model: x}}
teacher: {{backend: dataset, model: '{ref}'{extra}}}
problems: {{path: p.jsonl}}
eval: {{problems: p.jsonl}}
""")
    recipe = load_recipe(tmp_path / f"{name}.yaml")
    out = tmp_path / name / "traces.jsonl"
    summary = sample.run(recipe, [], out, show_progress=False)
    recs = list(read_records(out, Trace))
    assert not [r for r in recs if isinstance(r, BadLine)]
    return summary, {r.key: r for r in recs}


def test_openr1_math_layout_one_trace_per_generation(tmp_path):
    summary, recs = _import(tmp_path, _jsonl(tmp_path / "openr1.jsonl", OPENR1))
    assert sorted(recs) == [("u-1", 0), ("u-1", 1), ("u-2", 0)] and summary["sampled"] == 3
    first = recs[("u-1", 0)]
    assert first.answer == "5" and first.teacher == "deepseek-ai/DeepSeek-R1" and first.finish_reason == "stop"
    assert first.completion.startswith("<think>\n2 plus 3") and first.model_extra["dataset_verified"] is True
    assert recs[("u-1", 1)].finish_reason == "length"
    assert recs[("u-2", 0)].completion.startswith("<think>\n4 times 6")  # prefilled <think> given back
    again, _ = _import(tmp_path, tmp_path / "openr1.jsonl")
    assert again["sampled"] == 0 and again["already_done"] == 3  # a rerun writes nothing twice


def test_bespoke_and_openthoughts_conversations_layout_from_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(CONVERSATIONS), tmp_path / "bespoke.parquet")
    summary, recs = _import(tmp_path, tmp_path / "bespoke.parquet", dataset_layout="conversations")
    assert summary["sampled"] == 2
    by_answer = {r.answer: r for r in recs.values()}
    five = by_answer["5"]
    assert five.problem.startswith("Return your final response") and "<|" not in five.completion
    assert five.completion.startswith("<think>") and "</think>" in five.completion
    assert five.completion.rstrip().endswith("The answer is \\boxed{5}.")
    assert five.model_extra["answer_from"] == "teacher"
    assert detect_layout(CONVERSATIONS[0].keys()) == "conversations"


def test_openthoughts_metadata_layout_from_a_folder(tmp_path):
    folder = tmp_path / "ot"
    folder.mkdir()
    _jsonl(folder / "train-00000.jsonl", OPENTHOUGHTS_META)
    summary, recs = _import(tmp_path, folder)
    assert summary["sampled"] == 2 and summary["skipped_rows"] == 1  # the code row without tests
    math = next(r for r in recs.values() if r.domain == "math")
    code = next(r for r in recs.values() if r.domain == "code")
    assert math.answer == "2" and math.completion == "<think>\nSubtract one: x = 2.\n</think>\n\n$x = \\boxed{2}$"
    # The reasoning is stored once (in the completion), so it is also counted once against too_long.
    assert math.reasoning_content is None
    assert (tmp_path / "t" / "traces.jsonl").read_text().count("Subtract one: x = 2.") == 1
    assert code.tests and code.tests[0].input == "1 2\n" and code.tests[0].output == "3\n"


def test_s1k_layout_from_a_saved_dataset_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list(S1K).save_to_disk(str(tmp_path / "s1k"))
    _, recs = _import(tmp_path, tmp_path / "s1k", dataset_limit=5)
    (rec,) = recs.values()
    assert rec.problem == "What is 5 + 7?" and rec.answer == "The answer is 12."
    assert rec.completion.startswith("<think>\n5 + 7 = 12.\n</think>") and rec.model_extra["dataset_grade"] == "Yes"


def test_limit_and_clear_errors(tmp_path, monkeypatch):
    _jsonl(tmp_path / "openr1.jsonl", OPENR1)
    assert len(list(DatasetTeacher(str(tmp_path / "openr1.jsonl"), limit=1).traces())) == 2
    _jsonl(tmp_path / "odd.jsonl", [{"foo": 1}])
    with pytest.raises(DistillError, match="no known trace layout"):
        list(DatasetTeacher(str(tmp_path / "odd.jsonl")).traces())
    with pytest.raises(DistillError, match="does not fit layout `s1k`"):
        list(DatasetTeacher(str(tmp_path / "openr1.jsonl"), layout="s1k").traces())
    with pytest.raises(DistillError, match="neither a local file"):
        list(DatasetTeacher("no/such/place/here").traces())
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # fail at once instead of waiting on a hub we cannot reach
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DistillError, match="could not open hub dataset open-r1/OpenR1-Math-220k"):
        list(DatasetTeacher("open-r1/OpenR1-Math-220k").traces())


def test_taco_call_based_tests_keep_fn_name_and_json_arguments():
    from distill.filter.code_tests import call_args, same_return
    from distill.sample.teacher.dataset import _tests

    raw = json.dumps({"inputs": [[[2, 7, 11, 15], 9]], "outputs": [[[0, 1]]], "fn_name": "twoSum"})
    (t,) = _tests(raw)
    assert t.fn_name == "twoSum"
    assert call_args(t.input) == [[2, 7, 11, 15], 9]  # str() would have given a Python repr to stdin
    assert same_return("[0, 1]", t.output)
    (plain,) = _tests(json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]}))
    assert plain.fn_name is None and plain.input == "1 2\n"
