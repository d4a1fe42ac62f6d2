"""DeepSpeed ZeRO-2 and ZeRO-3 for real: 2 CPU processes (gloo, DeepSpeed's CPU accelerator) started by
`accelerate launch` through the same path the GPU recipes take (`train.run` -> distill/train/launch.py)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from distill.recipe import load_recipe
from distill.records import Trace, write_jsonl
from distill.train import sft as train

pytestmark = pytest.mark.slow  # process launches of ~30-60 s each on 2 cores (offload: +JIT build of CPU Adam)

RECIPE = """
name: t
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: full, learning_rate: 1.0e-3, max_steps: 4, per_device_train_batch_size: 2, max_length: 128,
         logging_steps: 1, save_steps: 2, accelerate_config: {zero}, num_processes: 2}}
eval: {{problems: p.jsonl}}
"""




@pytest.mark.parametrize("zero", ["zero2", "zero3", "zero3_offload"])
def test_deepspeed_two_cpu_processes_lower_loss_and_save(zero, tiny_qwen2_dir, tmp_path):
    pytest.importorskip("deepspeed", reason="install with `.venv/bin/pip install --no-build-isolation deepspeed`")
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=tiny_qwen2_dir, zero=zero))
    write_jsonl(tmp_path / "accepted.jsonl", [
        Trace(problem_id=f"p{i}", sample_index=0, problem=f"What is {i} + 2?", answer=str(i + 2), teacher="t",
              completion=f"<think>\n{i} + 2 = {i + 2}\n</think>\n\nThe answer is \\boxed{{{i + 2}}}.")
        for i in range(16)])
    recipe = load_recipe(tmp_path / "r.yaml")
    out = tmp_path / "student"
    summary = train.run(recipe, tmp_path / "accepted.jsonl", out)
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert summary["losses"][-1] < summary["losses"][0]
    launched = (tmp_path / "student-launch" / "accelerate.yaml").read_text()
    assert "distributed_type: DEEPSPEED" in launched and f"deepspeed/{zero}.json" in launched
    before, after = load_file(str(tiny_qwen2_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(before) <= set(after)  # DeepSpeed also writes the tied lm_head
    assert all(after[k].shape == before[k].shape for k in before)  # ZeRO-3 shards gathered back whole
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2
    assert (tmp_path / "student-checkpoints" / "checkpoint-2" / "recipe.yaml").exists()
    # zero3_offload: DeepSpeed builds its own CPU Adam (it refuses a client optimizer with offload);
    # otherwise the Trainer's torch AdamW runs inside DeepSpeed's ZeRO optimizer.
    assert summary["optimizer"].endswith("DeepSpeedCPUAdam" if zero == "zero3_offload" else "AdamW")
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)
