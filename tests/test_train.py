import torch
from safetensors.torch import load_file

from distill import train
from distill.recipe import load_recipe
from distill.records import Trace, write_jsonl

RECIPE = """
name: t
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: {mode}, learning_rate: {lr}, max_steps: 6, per_device_train_batch_size: 4, max_length: 128,
         logging_steps: 1, save_steps: 3, lora_r: 8, lora_alpha: 16}}
eval: {{problems: p.jsonl}}
"""


def _traces(n=8):
    return [Trace(problem_id=f"p{i}", sample_index=0, problem=f"What is {i} + 2?", answer=str(i + 2), teacher="t",
                  completion=f"<think>\n{i} + 2 = {i + 2}\n</think>\n\nThe answer is \\boxed{{{i + 2}}}.")
            for i in range(n)]


def _setup(tmp_path, student, mode, lr):
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=student, mode=mode, lr=lr))
    write_jsonl(tmp_path / "accepted.jsonl", _traces())
    return load_recipe(tmp_path / "r.yaml")


def test_assistant_only_mask_is_exact(tiny_llama_dir, tmp_path):
    recipe = _setup(tmp_path, tiny_llama_dir, "full", 1e-3)
    _, tok = train.load_student(recipe, for_training=False)
    conv = train.training_messages(_traces()[3])
    enc = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    learned = tok.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
    masked = tok.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if not m])
    assert learned == "<think>\n3 + 2 = 5\n</think>\n\nThe answer is \\boxed{5}.<|im_end|>"
    assert masked == "<|im_start|>user\nWhat is 3 + 2?\nPlease reason step by step, and put your final answer " \
                     "within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n\n"


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_full_training_lowers_loss_changes_weights_and_saves(tiny_llama_dir, tmp_path):
    recipe = _setup(tmp_path, tiny_llama_dir, "full", 3e-3 / 3)
    out = tmp_path / "student"
    summary = train.run(recipe, tmp_path / "accepted.jsonl", out)
    assert summary["steps"] == 6 and summary["losses"][-1] < summary["losses"][0]
    before, after = _weights(tiny_llama_dir), _weights(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    assert (out / "recipe.yaml").exists() and (tmp_path / "student-checkpoints/recipe.yaml").exists()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] > ids["input_ids"].shape[1]


def test_lora_lowers_loss_and_merges(tiny_llama_dir, tmp_path):
    recipe = _setup(tmp_path, tiny_llama_dir, "lora", 1e-2)
    out = tmp_path / "student"
    summary = train.run(recipe, tmp_path / "accepted.jsonl", out)
    assert summary["losses"][-1] < summary["losses"][0]
    after = _weights(out)
    assert not any("lora" in k for k in after)  # merged into plain weights
    before = _weights(tiny_llama_dir)
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"])
