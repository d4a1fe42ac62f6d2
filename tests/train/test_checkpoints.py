"""Checkpoints keyed by what made them: a rerun with other data or train settings starts fresh and
moves the old run aside; the same run resumes; `--fresh` starts over without deleting anything."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from distill.recipe import load_recipe
from distill.records import Trace, write_jsonl
from distill.train import checkpoints
from distill.train import sft as train

RECIPE = """
name: t
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{mode: full, learning_rate: 1.0e-3, max_steps: 4, per_device_train_batch_size: 4, max_length: 128,
         logging_steps: 1, save_steps: 2, eval_fraction: 0, report_to: [none]}}
eval: {{problems: p.jsonl}}
"""


def _traces(offset: int, n: int = 8):
    return [Trace(problem_id=f"p{i}", sample_index=0, problem=f"What is {i} + {offset}?", answer=str(i + offset),
                  teacher="t", completion=f"<think>\n{i} + {offset} = {i + offset}\n</think>\n\n\\boxed{{{i + offset}}}")
            for i in range(n)]


def test_key_follows_data_and_learning_settings_not_bookkeeping(tiny_qwen2_dir, tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=tiny_qwen2_dir))
    write_jsonl(tmp_path / "a.jsonl", _traces(2))
    write_jsonl(tmp_path / "b.jsonl", _traces(3))
    base = load_recipe(tmp_path / "r.yaml")
    key = checkpoints.run_key(base, tmp_path / "a.jsonl")
    assert checkpoints.run_key(base, tmp_path / "b.jsonl") != key
    assert checkpoints.run_key(load_recipe(tmp_path / "r.yaml", ["train.learning_rate=5e-4"]), tmp_path / "a.jsonl") != key
    assert checkpoints.run_key(load_recipe(tmp_path / "r.yaml", ["train.logging_steps=7"]), tmp_path / "a.jsonl") == key


def test_claim_moves_another_runs_folder_aside_and_keeps_its_own(tmp_path):
    ckpt = tmp_path / "student-checkpoints"
    assert checkpoints.claim_folder(ckpt, "aaaa") is None
    (ckpt / "checkpoint-2").mkdir()
    assert checkpoints.claim_folder(ckpt, "aaaa") is None and (ckpt / "checkpoint-2").is_dir()
    moved = checkpoints.claim_folder(ckpt, "bbbb")
    assert moved.name == "student-checkpoints.aaaa" and (moved / "checkpoint-2").is_dir()
    assert not (ckpt / "checkpoint-2").exists() and json.loads((ckpt / "run_key.json").read_text())["key"] == "bbbb"
    again = checkpoints.claim_folder(ckpt, "bbbb", fresh=True)  # --fresh: aside too, under a new name
    assert again.name.startswith("student-checkpoints.bbbb") and again != moved and moved.is_dir()


def test_changed_data_trains_from_step_0_and_ships_new_weights(tiny_qwen2_dir, tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=tiny_qwen2_dir))
    recipe = load_recipe(tmp_path / "r.yaml")
    accepted = tmp_path / "accepted.jsonl"
    out = tmp_path / "student"
    write_jsonl(accepted, _traces(2))
    first = train.run(recipe, accepted, out)
    old = load_file(str(out / "model.safetensors"))
    assert first["steps"] == 4 and (tmp_path / "student-checkpoints" / "checkpoint-4").is_dir()

    write_jsonl(accepted, _traces(5))  # new traces, same path: the old run's checkpoint-4 must not be resumed
    second = train.run(recipe, accepted, out)
    assert second["resumed_from"] is None and second["steps"] == 4 and len(second["losses"]) == 4
    assert second["run_key"] != first["run_key"]
    new = load_file(str(out / "model.safetensors"))
    assert sum(not torch.equal(old[k], new[k]) for k in old) > len(old) // 2
    aside = tmp_path / f"student-checkpoints.{first['run_key']}"
    assert (aside / "checkpoint-4" / "recipe.yaml").is_file()  # the old run is kept, not deleted

    same = train.run(recipe, accepted, out)  # the same run again resumes its own last checkpoint
    assert same["resumed_from"].endswith("checkpoint-4") and same["losses"] == second["losses"]
