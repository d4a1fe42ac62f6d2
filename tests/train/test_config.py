"""What the trainer is built from: fp32 master weights wherever DeepSpeed does not hold them, the
`train.sft` pass-through checked by building SFTConfig, and report_to from the recipe."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from distill.errors import RecipeError
from distill.recipe import load_recipe
from distill.records import Trace, write_jsonl
from distill.train import sft as train
from distill.train.config import trainer_setup

RECIPE = """
name: t
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: {mode}, learning_rate: 1.0e-3, max_steps: 3, per_device_train_batch_size: 4, max_length: 128,
         bf16: true, logging_steps: 1, eval_fraction: 0{extra}}}
eval: {{problems: p.jsonl}}
"""


def _recipe(tmp_path, student, mode="full", extra="", overrides=None):
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=student, mode=mode, extra=extra))
    return load_recipe(tmp_path / "r.yaml", overrides)


def test_master_weights_are_fp32_unless_deepspeed_holds_them(tiny_qwen2_dir, tmp_path):
    full = trainer_setup(_recipe(tmp_path, tiny_qwen2_dir), tmp_path / "c", cuda=True)
    assert full.model_kwargs["dtype"] == torch.float32 and full.args.bf16 and full.cast_for_save == torch.bfloat16
    zero = trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, extra=", accelerate_config: zero2"), tmp_path / "c", cuda=True)
    assert zero.model_kwargs["dtype"] == torch.bfloat16 and zero.cast_for_save is None  # DeepSpeed's fp32 copy
    lora = trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, "lora"), tmp_path / "c", cuda=True)
    assert lora.model_kwargs["dtype"] == torch.bfloat16  # frozen base; PEFT keeps the adapters in fp32


@pytest.mark.parametrize("avx512_bf16,amx,want", [(True, False, True), (False, True, True), (False, False, False)])
def test_bf16_auto_on_cpu_follows_the_bf16_instructions(tiny_qwen2_dir, tmp_path, monkeypatch, avx512_bf16, amx, want):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    setup = trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, overrides=["train.bf16=auto"]), tmp_path / "c", cuda=False)
    assert setup.args.bf16 is want and (setup.cast_for_save == torch.bfloat16) is want
    assert setup.master_weights == ("fp32 model, bf16 autocast" if want else "fp32")


def test_bf16_full_fine_tune_updates_fp32_weights_and_ships_bf16(tiny_qwen2_dir, tmp_path):
    seen = {}

    class Dtypes(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen["params"] = {p.dtype for p in model.parameters()}

    recipe = _recipe(tmp_path, tiny_qwen2_dir, extra=", report_to: [tensorboard]")
    write_jsonl(tmp_path / "accepted.jsonl", [
        Trace(problem_id=f"p{i}", sample_index=0, problem=f"What is {i} + 2?", answer=str(i + 2), teacher="t",
              completion=f"<think>\n{i} + 2 = {i + 2}\n</think>\n\n\\boxed{{{i + 2}}}") for i in range(8)])
    summary = train.run(recipe, tmp_path / "accepted.jsonl", tmp_path / "student", callbacks=[Dtypes()])
    assert seen["params"] == {torch.float32} and summary["master_weights"].startswith("fp32")
    saved = load_file(str(tmp_path / "student" / "model.safetensors"))
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}
    assert list((tmp_path / "student-checkpoints" / "runs").rglob("events.out.tfevents*"))  # TensorBoard by default
    assert summary["throughput"]["tokens_per_s"] > 0 and summary["throughput"]["tokens_seen"] > 0


def test_sft_pass_through_reaches_sftconfig_and_bad_keys_name_the_recipe_key(tiny_qwen2_dir, tmp_path):
    ok = trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, extra=", sft: {neftune_noise_alpha: 5, save_only_model: true}"),
                       tmp_path / "c", cuda=False)
    assert ok.args.neftune_noise_alpha == 5 and ok.args.save_only_model is True
    with pytest.raises(RecipeError, match=r"train\.sft\.neftune_noise_alfa.*not an SFTConfig field"):
        trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, extra=", sft: {neftune_noise_alfa: 5}"), tmp_path / "c", cuda=False)
    with pytest.raises(RecipeError, match=r"train\.sft\.learning_rate.*set `train\.learning_rate`"):
        trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, extra=", sft: {learning_rate: 0.1}"), tmp_path / "c", cuda=False)
    with pytest.raises(RecipeError, match="SFTConfig refused"):
        trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, extra=", sft: {save_strategy: sometimes}"),
                      tmp_path / "c", cuda=False)


def test_report_to_and_lora_zero3_are_checked_by_the_recipe(tiny_qwen2_dir, tmp_path):
    assert _recipe(tmp_path, tiny_qwen2_dir).train.report_to == ["tensorboard"]
    wandb = trainer_setup(_recipe(tmp_path, tiny_qwen2_dir, extra=", report_to: [wandb]"), tmp_path / "c", cuda=False)
    assert wandb.args.report_to == ["wandb"]
    with pytest.raises(RecipeError, match="report_to"):
        _recipe(tmp_path, tiny_qwen2_dir, extra=", report_to: [none, wandb]")
    with pytest.raises(RecipeError, match="merged into the base"):
        _recipe(tmp_path, tiny_qwen2_dir, "lora", extra=", accelerate_config: zero3")
