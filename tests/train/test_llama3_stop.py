"""Llama-3.1 base models never trained `<|eot_id|>` (nor the header tokens): LoRA cannot reach embedding
rows, so their input and output rows are made trainable (PEFT's trainable_token_indices) and merged into
the student, which must then learn to emit the stop token."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from distill.recipe import load_recipe
from distill.records import Trace, write_jsonl
from distill.train import sft as train

pytestmark = pytest.mark.slow  # 40 LoRA steps over a 128k vocabulary: ~100 s of CPU

RECIPE = """
name: t
student: {{model: {student}, chat_template: llama3}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: lora, learning_rate: 1.0e-2, max_steps: 40, per_device_train_batch_size: 4, max_length: 128,
         logging_steps: 5, save_steps: 1000, lora_r: 8, lora_alpha: 16, lora_dropout: 0, eval_fraction: 0,
         report_to: [none]}}
eval: {{problems: p.jsonl}}
"""


@pytest.fixture(scope="module")
def tiny_llama3_untied(tmp_path_factory):
    """A 2-layer Llama with the real Llama-3 tokenizer and separate embedding / lm_head (as Llama-3.1-8B)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.assets import llama3_tokenizer_dir
    from distill.train.templates import apply_to

    dest = tmp_path_factory.mktemp("tiny-llama3")
    tok = AutoTokenizer.from_pretrained(llama3_tokenizer_dir())
    apply_to(tok, "llama3", prefill_think=True)
    torch.manual_seed(0)
    config = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=512, tie_word_embeddings=False,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def test_lora_student_learns_to_emit_eot(tiny_llama3_untied, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (tmp_path / "r.yaml").write_text(RECIPE.format(student=tiny_llama3_untied))
    traces = [Trace(problem_id=f"p{i}", sample_index=0, problem=f"What is {i} + 1?", answer=str(i + 1), teacher="t",
                    completion=f"<think>\n{i} + 1 = {i + 1}\n</think>\n\n\\boxed{{{i + 1}}}") for i in range(4)]
    write_jsonl(tmp_path / "accepted.jsonl", traces)
    recipe = load_recipe(tmp_path / "r.yaml")
    setup = train.trainer_setup(recipe, tmp_path / "c", cuda=False)
    eot = 128009
    assert set(setup.peft_config.trainable_token_indices) == {"embed_tokens", "lm_head"}
    assert eot in setup.peft_config.trainable_token_indices["lm_head"]

    out = tmp_path / "student"
    train.run(recipe, tmp_path / "accepted.jsonl", out)
    before, after = load_file(str(tiny_llama3_untied / "model.safetensors")), load_file(str(out / "model.safetensors"))
    turn = setup.peft_config.trainable_token_indices["lm_head"]  # <|start_header_id|>, <|end_header_id|>, eot
    others = torch.ones(before["lm_head.weight"].shape[0], dtype=torch.bool)
    others[turn] = False
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert not torch.equal(before[name][eot], after[name][eot])  # the stop token's rows were trained
        assert torch.equal(before[name][others], after[name][others])  # and no other token's rows

    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    conv = train.training_messages(traces[2])
    ids = tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
    stop_at = len(ids) - 1 - ids[::-1].index(eot)  # the assistant turn's closing <|eot_id|>
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids[:stop_at]])).logits[0, -1]
    assert int(logits.argmax()) == eot  # after the answer, the student says stop
