"""A training process killed with SIGKILL after a checkpoint resumes through the CLI, and ends with the
same weights (within floating-point tolerance) as the same run never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import _tiny
from safetensors.torch import load_file

from distill.records import Trace, write_jsonl

pytestmark = pytest.mark.slow  # two CLI training runs, ~1 minute on 2 cores

RECIPE = """
name: killed
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: full, learning_rate: 1.0e-3, max_steps: 60, per_device_train_batch_size: 4, max_length: 128,
         logging_steps: 1, save_steps: 5, save_total_limit: 3}}
eval: {{problems: p.jsonl}}
"""


def test_sigkill_after_a_checkpoint_then_rerun_finishes_the_same_run(smol_hf_dir, tmp_path):
    student = _tiny(tmp_path / "tiny-qwen2", "qwen2", smol_hf_dir, "chatml")
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=student))
    write_jsonl(tmp_path / "accepted.jsonl", [
        Trace(problem_id=f"p{i}", sample_index=0, problem=f"What is {i} + 2?", answer=str(i + 2), teacher="t",
              completion=f"<think>\n{i} + 2 = {i + 2}\n</think>\n\nThe answer is \\boxed{{{i + 2}}}.")
        for i in range(16)])
    cmd = [sys.executable, "-m", "distill", "train", "r.yaml", "--traces", "accepted.jsonl"]
    ckpts = tmp_path / "data/runs/killed/student-checkpoints"
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (ckpts / "checkpoint-10" / "recipe.yaml").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before a checkpoint to kill after"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "data/runs/killed/student").exists()
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "data/runs/killed/train_summary.json").read_text())
    resumed = int(Path(summary["resumed_from"]).name.removeprefix("checkpoint-"))
    assert resumed >= 10 and summary["steps"] == 60
    assert "resuming from" in done.stdout

    (tmp_path / "whole").mkdir()  # the same run, never killed, in its own folder
    (tmp_path / "whole" / "r.yaml").write_text((tmp_path / "r.yaml").read_text())
    whole = subprocess.run([*cmd[:-1], str(tmp_path / "accepted.jsonl")], cwd=tmp_path / "whole",
                           capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stderr[-2000:]
    resumed = load_file(str(tmp_path / "data/runs/killed/student/model.safetensors"))
    unkilled = load_file(str(tmp_path / "whole/data/runs/killed/student/model.safetensors"))
    base = load_file(str(student / "model.safetensors"))
    assert set(resumed) == set(unkilled)
    for name in resumed:
        assert torch.allclose(resumed[name].float(), unkilled[name].float(), atol=1e-4, rtol=1e-3), name
    assert any(not torch.allclose(base[n].float(), resumed[n].float(), atol=1e-3) for n in base)  # it trained
