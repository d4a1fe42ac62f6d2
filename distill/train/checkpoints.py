"""Checkpoints keyed by what made them: a run resumes only its own checkpoints.

The key is a hash of the student section, the train settings that change the result (not logging
or saving cadence) and the accepted traces file. A run whose key differs from the one recorded in
the checkpoint folder (or `--fresh`) moves that folder aside, named by its old key, and starts from
step 0: a rerun after the data or `train.*` changed never inherits the old optimizer, scheduler and
step, and never ships the old weights as the new student. Nothing is deleted.

    key = run_key(recipe, accepted); moved = claim_folder(ckpt_dir, key, fresh=False)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from distill.recipe import Recipe
from distill.records import read_json, short_sha, write_json

# Settings that say how a run is watched and saved, not what it learns: changing them keeps resuming.
BOOKKEEPING = {"logging_steps", "save_steps", "save_total_limit", "report_to", "dataset_num_proc", "ddp_timeout",
               "eval_steps"}
KEY_FILE = "run_key.json"


def run_key(recipe: Recipe, accepted: Path) -> str:
    """What made a training run: student, the learning settings and the exact traces."""
    resolved = recipe.resolved()
    train = {k: v for k, v in resolved["train"].items() if k not in BOOKKEEPING}
    parts = [resolved["student"], train, short_sha(Path(accepted))]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def claim_folder(ckpt_dir: Path, key: str, fresh: bool = False) -> Path | None:
    """Make `ckpt_dir` this run's folder. A folder made by another run (or any, with `fresh`) is moved
    aside to `<ckpt_dir>.<its key>` and returned; None when the folder was already this run's or new."""
    ckpt_dir = Path(ckpt_dir)
    moved = None
    if ckpt_dir.exists():
        old = read_json(ckpt_dir / KEY_FILE).get("key") if (ckpt_dir / KEY_FILE).is_file() else None
        if old == key and not fresh:
            return None
        aside = ckpt_dir.with_name(f"{ckpt_dir.name}.{old or 'unkeyed'}")
        if aside.exists():
            aside = aside.with_name(f"{aside.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        ckpt_dir.rename(aside)
        moved = aside
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_json(ckpt_dir / KEY_FILE, {"key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return moved


def last_checkpoint(ckpt_dir: Path, key: str) -> str | None:
    """The newest complete checkpoint of the run `key`. SaveRecipe writes recipe.yaml in on_save, after
    the Trainer has written everything else, so a folder without it was torn by a kill mid-save."""
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / KEY_FILE).is_file() or read_json(ckpt_dir / KEY_FILE).get("key") != key:
        return None
    found = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()),
                   key=lambda p: int(p.name.removeprefix("checkpoint-")), reverse=True)
    for folder in found:
        if (folder / "recipe.yaml").is_file() and (folder / "trainer_state.json").is_file():
            return str(folder)
        print(f"warning: skipping incomplete checkpoint {folder} (the run was killed while saving it)", flush=True)
    return None
