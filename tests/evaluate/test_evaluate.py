import math

import pytest

from distill.errors import DistillError
from distill.evaluate import harness as evaluate
from distill.evaluate.backends import open_backend
from distill.filter.verify import is_correct
from distill.recipe import EvalCfg
from distill.records import Problem

PROBLEMS = [Problem(id=f"q{i}", problem=f"What is {i} + 1?", answer=str(i + 1)) for i in range(3)]


def test_is_correct_uses_the_filters_rules():
    assert is_correct("<think>\n2+1=3\n</think>\n\\boxed{3}", "math", "3")
    assert is_correct("\\boxed{3}", "math", "3")  # eval does not require a think block
    assert not is_correct("<think>\n\\boxed{3}", "math", "3", require_think=True)
    assert not is_correct("<think>x</think> \\boxed{4}", "math", "3")


@pytest.mark.parametrize("n,c,k,expected", [
    (5, 2, 1, 0.4),            # c/n
    (5, 2, 2, 0.7),            # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (5, 2, 3, 0.9),            # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (5, 2, 4, 1.0),            # fewer than k wrong samples: some k-subset always has a right one
    (5, 0, 3, 0.0),
    (100, 1, 10, 0.1),         # 1 - C(99,10)/C(100,10) = 1 - 90/100
    (4, 4, 4, 1.0),
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert evaluate.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    exact = 1 - math.comb(1900, 100) / math.comb(2000, 100)  # Python ints: exact
    assert evaluate.pass_at_k(2000, 100, 100) == pytest.approx(exact, rel=1e-9)
    with pytest.raises(ValueError):
        evaluate.pass_at_k(4, 1, 5)


def test_summary_averages_over_problems():
    cfg = EvalCfg(problems="p.jsonl", n=4, pass_k=[2, 4])
    probs = PROBLEMS[:2]
    rows = [{"problem_id": "q0", "correct": ok, "closed_think": True, "completion_tokens": 10}
            for ok in (True, False, True, False)]
    rows += [{"problem_id": "q1", "correct": False, "closed_think": False, "completion_tokens": 20}] * 4
    s = evaluate.summarise(rows, probs, cfg)
    assert s["pass@1"] == pytest.approx(0.25)
    assert s["pass@2"] == pytest.approx((1 - 1 / 6) / 2, abs=1e-4)
    assert s["pass@4"] == pytest.approx(0.5)
    assert s["closed_think_rate"] == 0.5 and s["mean_completion_tokens"] == 15


def test_recipe_checks_pass_k_against_n():
    with pytest.raises(ValueError, match="eval.n"):
        EvalCfg(problems="p.jsonl", n=2, pass_k=[4])
    with pytest.raises(ValueError, match="unknown benchmark"):
        EvalCfg(problems="p.jsonl", benchmarks=["mmlu"])


def _check_budget_rows(curve, budgets):
    assert [p["budget"] for p in curve["points"]] == budgets
    for p in curve["points"]:
        assert 0 < p["mean_thinking_tokens"] <= p["budget"]
        assert p["closed_think_rate"] == 1.0  # the forced "</think>" closes every block


def test_eval_hf_folder_rows_summary_and_budgets(tiny_llama_dir, tmp_path):
    cfg = EvalCfg(problems="p.jsonl", n=2, temperature=0.0, max_tokens=6, batch_size=4, answer_tokens=4)
    res = evaluate.run(str(tiny_llama_dir), PROBLEMS, cfg, tmp_path / "e.jsonl", show_progress=False)
    assert res["problems"] == 3 and res["n"] == 2 and 0.0 <= res["pass@1"] <= 1.0
    rows = (tmp_path / "e.jsonl").read_text().splitlines()
    assert len(rows) == 6 and (tmp_path / "e.summary.json").exists()
    assert 0 < res["mean_completion_tokens"] <= 6

    curve = evaluate.budget_curve(str(tiny_llama_dir), PROBLEMS, cfg, [2, 5], tmp_path / "b", show_progress=False)
    _check_budget_rows(curve, [2, 5])
    assert (tmp_path / "b" / "budgets.json").exists() and (tmp_path / "b" / "budget-5.jsonl").exists()
    # The random tiny model never closes its own thinking: the budget cuts it, so a bigger budget thinks longer.
    assert curve["points"][0]["mean_thinking_tokens"] < curve["points"][1]["mean_thinking_tokens"]


def test_eval_gguf_in_process(smol_gguf, tmp_path):
    cfg = EvalCfg(problems="p.jsonl", n=1, temperature=0.0, max_tokens=8, answer_tokens=8, n_ctx=512)
    with open_backend(str(smol_gguf), cfg) as backend:
        res = evaluate.run(backend, PROBLEMS[:2], cfg, tmp_path / "g.jsonl", label="gguf")
        curve = evaluate.budget_curve(backend, PROBLEMS[:2], cfg, [4])
    assert res["model"] == "gguf" and res["problems"] == 2 and res["mean_completion_tokens"] > 0
    assert (tmp_path / "g.summary.json").exists()
    _check_budget_rows(curve, [4])
    row = evaluate._row(PROBLEMS[0], 0, "<think>\n0+1=1\n</think>\n\n\\boxed{1}", 5)
    assert row["correct"] and row["closed_think"]


def test_eval_endpoint_against_llama_server(llama_server, smol_hf_dir, tmp_path):
    cfg = EvalCfg(problems="p.jsonl", n=2, temperature=0.6, max_tokens=8, answer_tokens=6, batch_size=2)
    res = evaluate.run(llama_server.url, PROBLEMS[:2], cfg, tmp_path / "s.jsonl", show_progress=False,
                       served_model=llama_server.alias)
    assert res["problems"] == 2 and res["n"] == 2
    rows = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(rows) == 4 and res["mean_completion_tokens"] > 0

    with pytest.raises(DistillError, match="--tokenizer"):
        evaluate.budget_curve(llama_server.url, PROBLEMS[:1], cfg, [4], show_progress=False)
    curve = evaluate.budget_curve(llama_server.url, PROBLEMS[:1], cfg, [4], show_progress=False,
                                  served_model=llama_server.alias, tokenizer=str(smol_hf_dir))
    _check_budget_rows(curve, [4])


def test_unreachable_endpoint_is_a_clear_error():
    cfg = EvalCfg(problems="p.jsonl", max_tokens=4, timeout_s=2)
    with pytest.raises(DistillError, match="is the server up"):
        evaluate.run("http://127.0.0.1:9/v1", PROBLEMS[:1], cfg, show_progress=False)
