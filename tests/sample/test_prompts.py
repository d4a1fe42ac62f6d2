"""Prompts per domain: what each asks for is what the verifier extracts; recipes reword the teacher's."""

import pytest

from distill.filter.verify import extract_answer
from distill.r1 import R1_INSTRUCTION
from distill.r1 import user_prompt as r1_prompt
from distill.recipe import PromptsCfg, load_recipe
from distill.records import Problem, Trace
from distill.sample.prompts import student_messages, teacher_messages, user_prompt

MATH = Problem(id="m", problem="What is $2+3$?", answer="5")
STDIN = Problem(id="s", problem="Print a+b.", answer="", domain="code", tests=[{"input": "1 2\n", "output": "3\n"}])
CALL = Problem(id="c", problem="Sum a list.", answer="", domain="code",
               tests=[{"input": "[[1, 2]]", "output": "3", "fn_name": "total"}])
CHOICE = Problem(id="q", problem="Which is a gas?\n\nA) Iron\nB) Argon", answer="B", domain="choice",
                 choices=["Iron", "Argon"])


def test_math_keeps_r1s_prompt_word_for_word():
    assert user_prompt(MATH) == r1_prompt(MATH.problem) == f"{MATH.problem}\n{R1_INSTRUCTION}"
    assert user_prompt("What is 1+1?") == r1_prompt("What is 1+1?")


def test_each_domain_asks_for_the_form_its_verifier_reads():
    stdin, call, choice = user_prompt(STDIN), user_prompt(CALL), user_prompt(CHOICE)
    assert "standard input" in stdin and "```python" in stdin and "\\boxed" not in stdin
    assert "`total`" in call and "```python" in call and "standard input" not in call
    assert "letter" in choice and "\\boxed{}" in choice and choice.startswith(CHOICE.problem)
    # The answers these prompts ask for are what extract_answer takes out.
    assert extract_answer("Done.\n```python\nprint(sum(map(int, input().split())))\n```", "code") \
        == "print(sum(map(int, input().split())))\n"
    assert extract_answer("So the answer is \\boxed{B}.", "choice", CHOICE.choices) == "B"


def test_overrides_reword_the_teacher_only():
    prompts = PromptsCfg(code_call="Implement {fn_name} in Python, one ```python block.",
                         math="Box the final answer: \\boxed{}.")
    assert teacher_messages(CALL, prompts=prompts)[-1]["content"].endswith("Implement total in Python, one ```python block.")
    assert teacher_messages(MATH, prompts=prompts)[-1]["content"] == "What is $2+3$?\n\nBox the final answer: \\boxed{}."
    assert teacher_messages(STDIN, prompts=prompts)[-1]["content"] == user_prompt(STDIN)  # not overridden
    # The student is trained and judged on the defaults, whatever the teacher was asked.
    trace = Trace(problem_id="c", sample_index=0, problem=CALL.problem, answer="", domain="code", teacher="t",
                  completion="<think>x</think>", tests=CALL.tests)
    assert student_messages(trace) == [{"role": "user", "content": user_prompt(CALL)}]


def test_worked_examples_go_to_math_problems_only():
    with_examples = teacher_messages(MATH, system="S", few_shot=2)
    assert [m["role"] for m in with_examples] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["role"] for m in teacher_messages(STDIN, system="S", few_shot=2)] == ["system", "user"]


def test_recipe_prompt_keys_are_checked(tmp_path):
    base = ("student: {model: m}\nteacher: {backend: hf, model: m}\nproblems: {path: p.jsonl}\n"
            "eval: {problems: p.jsonl}\n")
    (tmp_path / "ok.yaml").write_text(base + "sampling: {prompts: {choice: 'Answer with one letter in \\\\boxed{}.'}}\n")
    assert load_recipe(tmp_path / "ok.yaml").sampling.prompts.choice.startswith("Answer with one letter")
    (tmp_path / "bad.yaml").write_text(base + "sampling: {prompts: {science: 'x'}}\n")
    from distill.errors import RecipeError

    with pytest.raises(RecipeError, match="sampling.prompts.science"):
        load_recipe(tmp_path / "bad.yaml")
