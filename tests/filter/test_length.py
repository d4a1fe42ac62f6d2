"""filter.max_length counts what training will hold: the student's tokens of prompt, trace and template."""

import json

import pytest

from distill.errors import DistillError, RecipeError
from distill.filter import judging
from distill.filter.length import TEMPLATE_TOKENS, student_tokens
from distill.recipe import FilterCfg, load_recipe
from distill.records import Trace
from distill.sample.prompts import student_messages, user_prompt

QUESTION = "Ava has 12 apples and gets 30 more. How many apples does Ava have now?"


def trace(words: int, problem: str = QUESTION) -> Trace:
    body = " ".join(["twelve plus thirty"] * words)
    return Trace(problem_id="p", sample_index=0, problem=problem, answer="42", teacher="t",
                 completion=f"<think>\n{body}\n</think>\n\nAva has \\boxed{{42}} apples.", completion_tokens=5)


@pytest.mark.parametrize("style", ["chatml", "llama3"])
def test_the_template_margin_bounds_the_real_chat_templates(style, smol_hf_dir):
    """What the trainer tokenizes (the chat template applied to prompt and trace) never exceeds the
    count, and the count is not loose by more than a few tokens."""
    from transformers import AutoTokenizer

    from distill.assets import llama3_tokenizer_dir
    from distill.train.templates import apply_to

    folder = smol_hf_dir if style == "chatml" else llama3_tokenizer_dir()
    tok = AutoTokenizer.from_pretrained(folder)
    apply_to(tok, style, prefill_think=True)
    t = trace(50)
    conversation = student_messages(t) + [{"role": "assistant", "content": t.completion}]
    real = len(tok.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"])
    counted = student_tokens(t, str(folder))
    assert real <= counted <= real + TEMPLATE_TOKENS // 2 + 2


def test_too_long_counts_the_prompt_in_student_tokens(smol_hf_dir):
    t = trace(20)
    n = student_tokens(t, str(smol_hf_dir))
    prompt = len(user_prompt(t).split())
    assert n > 60 + prompt  # the teacher said 5 tokens; the student's count is the real one
    fits = FilterCfg(max_length=n, tokenizer=str(smol_hf_dir), dedup=False, decontaminate=[])
    assert "too_long" not in judging.judge(t, fits)
    assert "too_long" in judging.judge(t, fits.model_copy(update={"max_length": n - 1}))
    # A longer problem alone pushes the same trace over: the prompt is counted.
    long_problem = trace(20, problem=QUESTION + " Explain every step carefully." * 5)
    assert "too_long" in judging.judge(long_problem, fits)


def test_a_tokenizer_that_cannot_load_is_one_clear_error(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(trace(3).model_dump(exclude_none=True)) + "\n")
    cfg = FilterCfg(max_length=1000, tokenizer=str(tmp_path / "no-tokenizer"), decontaminate=[])
    with pytest.raises(DistillError, match="filter.tokenizer"):
        judging.run(path, tmp_path / "out", cfg, workers=1, progress=False)
    assert not (tmp_path / "out" / "accepted.jsonl").exists()


BASE = """student: {{model: {student}}}
teacher: {{backend: hf, model: m}}
problems: {{path: p.jsonl}}
sampling: {{max_tokens: {sample}}}
filter: {{max_length: {cap}}}
train: {{max_length: {train}}}
eval: {{problems: p.jsonl}}
"""


def test_recipe_lengths_must_agree(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(BASE.format(student="some/model", sample=1000, cap=2048, train=2048))
    r = load_recipe(path)
    assert r.filter.tokenizer == "some/model"  # the student's tokenizer unless told otherwise
    path.write_text(BASE.format(student="m", sample=1000, cap=4096, train=2048))
    with pytest.raises(RecipeError, match="filter.max_length 4096 exceeds train.max_length 2048"):
        load_recipe(path)
    path.write_text(BASE.format(student="m", sample=3000, cap=2048, train=2048))
    with pytest.raises(RecipeError, match="sampling.max_tokens 3000 exceeds filter.max_length 2048"):
        load_recipe(path)
    path.write_text(BASE.format(student="m", sample=1000, cap=2048, train=8192)
                    .replace("model: m}", "model: m, max_position_embeddings: 4096}", 1))
    with pytest.raises(RecipeError, match="train.max_length 8192 exceeds student.max_position_embeddings 4096"):
        load_recipe(path)
