"""Real TRL training on tiny models built from configs with real tokenizers: full, LoRA and QLoRA lower
the loss and change the weights, a run interrupted after a checkpoint resumes to the same end, every
checkpoint carries the recipe, and the final folder loads with from_pretrained and generates."""

import itertools
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file

from distill.recipe import load_recipe
from distill.records import Trace, write_jsonl
from distill.train import sft as train
from distill.train.config import sft_kwargs

RECIPE = """
name: t
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: {mode}, learning_rate: {lr}, max_steps: 6, per_device_train_batch_size: 4, max_length: 128,
         logging_steps: 1, save_steps: 3, lora_r: 8, lora_alpha: 16, packing: {packing}}}
eval: {{problems: p.jsonl}}
"""
RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))




def _traces(n=8):
    return [Trace(problem_id=f"p{i}", sample_index=0, problem=f"What is {i} + 2?", answer=str(i + 2), teacher="t",
                  completion=f"<think>\n{i} + 2 = {i + 2}\n</think>\n\nThe answer is \\boxed{{{i + 2}}}.")
            for i in range(n)]


def _setup(tmp_path, student, mode, lr, packing=False):
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=student, mode=mode, lr=lr, packing=str(packing).lower()))
    write_jsonl(tmp_path / "accepted.jsonl", _traces())
    return load_recipe(tmp_path / "r.yaml")


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def _loads_and_generates(out: Path, stop: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == stop and model.generation_config.eos_token_id == tok.convert_tokens_to_ids(stop)
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] > ids["input_ids"].shape[1]


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


def test_full_qwen2_packed_lowers_loss_changes_weights_and_saves(tiny_qwen2_dir, tmp_path):
    recipe = _setup(tmp_path, tiny_qwen2_dir, "full", 1e-3, packing=True)
    out = tmp_path / "student"
    summary = train.run(recipe, tmp_path / "accepted.jsonl", out)
    assert summary["steps"] == 6 and summary["losses"][-1] < summary["losses"][0]
    # The default eval_fraction (0.05) holds out problem p7: 7 traces train, 1 gives an eval loss.
    assert summary["data"]["kept"] == 7 and summary["data"]["eval_examples"] == 1
    assert isinstance(summary["eval_loss"], float)
    before, after = _weights(tiny_qwen2_dir), _weights(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    ckpts = tmp_path / "student-checkpoints"
    assert (out / "recipe.yaml").exists() and (ckpts / "recipe.yaml").exists()
    assert sorted(p.parent.name for p in ckpts.glob("checkpoint-*/recipe.yaml")) == ["checkpoint-3", "checkpoint-6"]
    assert load_recipe(ckpts / "checkpoint-3" / "recipe.yaml").train.packing is True
    _loads_and_generates(out, "<|im_end|>")


def test_lora_lowers_loss_and_merges(tiny_llama_dir, tmp_path):
    recipe = _setup(tmp_path, tiny_llama_dir, "lora", 1e-2)
    out = tmp_path / "student"
    summary = train.run(recipe, tmp_path / "accepted.jsonl", out)
    assert summary["losses"][-1] < summary["losses"][0]
    after = _weights(out)
    assert not any("lora" in k for k in after)  # merged into plain weights
    before = _weights(tiny_llama_dir)
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"])


def test_qlora_nf4_lowers_loss_and_merges_into_the_unquantized_base(tiny_qwen2_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    recipe = _setup(tmp_path, tiny_qwen2_dir, "qlora", 1e-2)
    setup = train.trainer_setup(recipe, tmp_path / "c", cuda=False)
    q = setup.quantization_config
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert setup.peft_config.target_modules == "all-linear"
    out = tmp_path / "student"
    summary = train.run(recipe, tmp_path / "accepted.jsonl", out)
    assert summary["losses"][-1] < summary["losses"][0]
    before, after = _weights(tiny_qwen2_dir), _weights(out)
    assert set(after) == set(before) and all(v.dtype == torch.float32 for v in after.values())
    for name in ("model.layers.0.mlp.down_proj.weight", "model.layers.1.self_attn.v_proj.weight"):
        assert not torch.equal(before[name], after[name])  # the adapter is merged into every linear
    _loads_and_generates(out, "<|im_end|>")


class _Interrupt(Exception):
    pass


def test_run_interrupted_after_a_checkpoint_resumes_to_the_same_end(tiny_qwen2_dir, tmp_path):
    from transformers import TrainerCallback

    class KillAfterStep4(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                raise _Interrupt  # as a kill would, mid-run after checkpoint-3 was written

    class CountSteps(TrainerCallback):
        steps: ClassVar[list] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(state.global_step)

    recipe = _setup(tmp_path, tiny_qwen2_dir, "full", 1e-3)
    out = tmp_path / "student"
    with pytest.raises(_Interrupt):
        train.run(recipe, tmp_path / "accepted.jsonl", out, callbacks=[KillAfterStep4()])
    ckpt3 = tmp_path / "student-checkpoints" / "checkpoint-3"
    assert not out.exists() and ckpt3.is_dir() and (ckpt3 / "recipe.yaml").exists()
    summary = train.run(recipe, tmp_path / "accepted.jsonl", out, callbacks=[CountSteps()])
    assert summary["resumed_from"].endswith("checkpoint-3") and summary["steps"] == 6
    assert CountSteps.steps == [4, 5, 6]  # 1..3 were not redone
    import json

    before = [h["loss"] for h in json.loads((ckpt3 / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert summary["losses"][:3] == before and summary["losses"][-1] < summary["losses"][0]
    _loads_and_generates(out, "<|im_end|>")


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_builds_its_trainer_configuration_without_weights(path, tmp_path, monkeypatch):
    import torch

    from distill.train import launch

    recipe = load_recipe(path)
    t = recipe.train
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # a bf16 GPU (A100, H100)
    setup = train.trainer_setup(recipe, tmp_path / "ckpt", cuda=True)  # as on the GPU it is written for
    args, gpu = setup.args, sft_kwargs(recipe, tmp_path / "ckpt", cuda=True)
    assert args.bf16 == (t.bf16 in (True, "auto")) and gpu["use_cpu"] is False
    assert args.max_length == t.max_length and args.learning_rate == t.learning_rate
    assert args.packing == t.packing and args.report_to == ([] if t.report_to == ["none"] else t.report_to)
    assert (setup.peft_config is not None) == (t.mode in ("lora", "qlora"))
    if t.mode == "qlora":
        assert setup.quantization_config.bnb_4bit_quant_type == "nf4" and gpu["optim"].startswith("paged_adamw")
    if t.accelerate_config:
        plan = launch.plan_launch(t, env={}, gpus=8)
        resolved = launch.resolved_accelerate_config(plan, tmp_path / "accelerate.yaml")
        import yaml

        ds = (yaml.safe_load(resolved.read_text()).get("deepspeed_config") or {}).get("deepspeed_config_file")
        assert ds is None or Path(ds).is_file()
    assert not any(tmp_path.rglob("*.safetensors"))


def test_packed_batch_attends_within_each_example_only(tiny_qwen2_dir, tmp_path):
    """The loss of a packed (bfd, position-id) batch equals the loss of its examples run one by one."""
    from datasets import Dataset
    from trl import SFTTrainer

    recipe = _setup(tmp_path, tiny_qwen2_dir, "full", 1e-3, packing=True)
    setup = train.trainer_setup(recipe, tmp_path / "c")
    model, tok = train.load_student(recipe, model_kwargs=setup.model_kwargs)
    model.config.use_cache = False  # as train.run does
    data = Dataset.from_list([{"messages": train.training_messages(t)} for t in _traces(3)])
    trainer = SFTTrainer(model=model, args=setup.args, processing_class=tok, train_dataset=data)
    batch = next(iter(trainer.get_train_dataloader()))
    pos = batch["position_ids"][0]
    starts = [i for i in range(len(pos)) if pos[i] == 0] + [len(pos)]
    assert len(starts) - 1 >= 2  # at least two examples share the row
    model.train()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        for a, b in itertools.pairwise(starts):
            alone = model(input_ids=batch["input_ids"][:, a:b]).logits[0]
            assert torch.allclose(logits[a:b], alone, atol=1e-4)
