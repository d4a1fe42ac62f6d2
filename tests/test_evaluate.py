from distill import evaluate
from distill.recipe import EvalCfg
from distill.records import Problem
from distill.verify import is_correct

PROBLEMS = [Problem(id=f"q{i}", problem=f"What is {i} + 1?", answer=str(i + 1)) for i in range(3)]


def test_is_correct_uses_the_filters_rules():
    assert is_correct("<think>\n2+1=3\n</think>\n\\boxed{3}", "math", "3")
    assert is_correct("\\boxed{3}", "math", "3")  # eval does not require a think block
    assert not is_correct("<think>\n\\boxed{3}", "math", "3", require_think=True)
    assert not is_correct("<think>x</think> \\boxed{4}", "math", "3")


def test_eval_hf_folder_writes_rows_and_summary(tiny_llama_dir, tmp_path):
    cfg = EvalCfg(problems="p.jsonl", n=2, temperature=0.0, max_tokens=6, batch_size=4)
    res = evaluate.run(str(tiny_llama_dir), PROBLEMS, cfg, tmp_path / "e.jsonl", show_progress=False)
    assert res["problems"] == 3 and res["n"] == 2 and 0.0 <= res["pass@1"] <= 1.0
    rows = (tmp_path / "e.jsonl").read_text().splitlines()
    assert len(rows) == 6 and (tmp_path / "e.summary.json").exists()
    assert res["mean_completion_tokens"] > 0
