"""Multi-process training through `accelerate launch` (DDP or DeepSpeed ZeRO), one node or many.

`distill train` calls `train.run`, which asks `plan_launch` how many processes the recipe and the
visible GPUs want. One process without DeepSpeed trains in place; more, or any DeepSpeed config (ZeRO-3
on one GPU too), start `distill.train.sft` under `accelerate launch` with the resolved recipe, so every
worker trains exactly what the parent validated. Multi-node runs read the standard torchrun variables
(NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT) that `scripts/train.slurm` sets on every node, and start
one `accelerate launch` per node: DeepSpeed's `standard` multi-node launcher (torchrun), never
pdsh with a hostfile.

    python -m distill.train.sft RESOLVED_RECIPE ACCEPTED_JSONL OUT_DIR     # what each worker runs
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from distill.errors import DistillError
from distill.recipe import Recipe, TrainCfg, save_resolved

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
NAMED_CONFIGS = ("ddp", "zero2", "zero3", "zero3_offload")
DEEPSPEED_STAGE = {"zero2": 2, "zero3": 3, "zero3_offload": 3}


@dataclass
class LaunchPlan:
    processes_per_node: int
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int = 29500
    config: str | None = None  # a named config (ddp, zero2, ...) or a path
    cuda: bool = True

    @property
    def world_size(self) -> int:
        return self.processes_per_node * self.num_machines


def inside_launch() -> bool:
    """True in a worker started by accelerate/torchrun (they export WORLD_SIZE to each process)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def config_path(name: str) -> Path:
    """A named accelerate config in recipes/accelerate/, or a path to one."""
    path = RECIPES / "accelerate" / f"{name}.yaml" if name in NAMED_CONFIGS else Path(name)
    if not path.is_file():
        raise DistillError(f"accelerate config {name!r} not found; use one of {list(NAMED_CONFIGS)} "
                           f"or a path to an accelerate config file (key `train.accelerate_config`)")
    return path


def deepspeed_stage(cfg: TrainCfg) -> int:
    """The ZeRO stage the recipe trains under (0: no DeepSpeed)."""
    name = cfg.accelerate_config
    if name is None or name == "ddp":
        return 0
    if name in DEEPSPEED_STAGE:
        return DEEPSPEED_STAGE[name]
    data = yaml.safe_load(config_path(name).read_text()) or {}
    ds = data.get("deepspeed_config") or {}
    if "zero_stage" in ds:
        return int(ds["zero_stage"])
    if "deepspeed_config_file" in ds:
        import json

        file = Path(ds["deepspeed_config_file"])
        file = file if file.is_absolute() else RECIPES.parent / file
        return int(json.loads(file.read_text()).get("zero_optimization", {}).get("stage", 0))
    return 0


def plan_launch(cfg: TrainCfg, env: dict | None = None, gpus: int | None = None) -> LaunchPlan:
    """How many processes on how many machines: the recipe's `num_processes`, else the visible GPUs."""
    env = os.environ if env is None else env
    gpus = visible_gpus() if gpus is None else gpus
    per_node = cfg.num_processes or max(gpus, 1)
    machines = int(env.get("NNODES", env.get("NUM_MACHINES", 1)))
    config = cfg.accelerate_config
    if config is None and per_node * machines > 1:
        config = "ddp"  # more than one GPU and no config: plain data parallel
    return LaunchPlan(
        processes_per_node=per_node, num_machines=machines, machine_rank=int(env.get("NODE_RANK", env.get("MACHINE_RANK", 0))),
        main_process_ip=env.get("MASTER_ADDR"), main_process_port=int(env.get("MASTER_PORT", 29500)),
        config=config, cuda=gpus > 0,
    )


def needs_launch(cfg: TrainCfg, plan: LaunchPlan) -> bool:
    """More than one process, or DeepSpeed (which needs its launcher's environment even for one)."""
    return plan.world_size > 1 or (plan.config is not None and deepspeed_stage(cfg) > 0)


def resolved_accelerate_config(plan: LaunchPlan, dest: Path) -> Path:
    """The named config with the fields only the launch knows filled in, written to `dest`."""
    data = yaml.safe_load(config_path(plan.config).read_text()) or {}
    ds = data.get("deepspeed_config") or {}
    if "deepspeed_config_file" in ds and not Path(ds["deepspeed_config_file"]).is_absolute():
        ds["deepspeed_config_file"] = str(RECIPES.parent / ds["deepspeed_config_file"])
    if data.get("distributed_type") == "DEEPSPEED":
        # One torchrun per node (what Slurm starts); accelerate's default, pdsh, needs ssh and a hostfile.
        ds["deepspeed_multinode_launcher"] = "standard"
        data["deepspeed_config"] = ds
    data.update(num_processes=plan.world_size, num_machines=plan.num_machines, machine_rank=plan.machine_rank)
    if plan.main_process_ip:
        data.update(main_process_ip=plan.main_process_ip, main_process_port=plan.main_process_port)
    if not plan.cuda:
        # CPU workers (tests, laptops): gloo processes; DeepSpeed picks its CPU accelerator itself.
        data["use_cpu"] = True
        if data.get("distributed_type") == "MULTI_GPU":
            data["distributed_type"] = "MULTI_CPU"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def launch_command(plan: LaunchPlan, config_file: Path, recipe_file: Path, accepted: Path, out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "-m", "distill.train.sft", str(recipe_file), str(accepted), str(out_dir)]


def launch(recipe: Recipe, accepted: Path, out_dir: Path, plan: LaunchPlan) -> dict:
    """Run the training under `accelerate launch` and return the summary the main worker wrote."""
    import json

    if plan.config is not None and deepspeed_stage(recipe.train) > 0:
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise DistillError(f"train.accelerate_config={plan.config} needs DeepSpeed: run "
                               "`.venv/bin/pip install --no-build-isolation deepspeed` (or `make setup`)") from None
    out_dir = Path(out_dir).resolve()
    launch_dir = out_dir.parent / (out_dir.name + "-launch")
    recipe_file = launch_dir / "recipe.yaml"
    save_resolved(recipe, recipe_file)
    config_file = resolved_accelerate_config(plan, launch_dir / "accelerate.yaml")
    cmd = launch_command(plan, config_file, recipe_file, Path(accepted).resolve(), out_dir)
    print(f"launching {plan.world_size} processes ({plan.config}): {' '.join(cmd)}", flush=True)
    summary_file = out_dir.parent / "train_summary.json"
    if plan.machine_rank == 0:  # only the first node's rank 0 writes it (others may share the filesystem)
        summary_file.unlink(missing_ok=True)
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    if proc.returncode != 0:
        raise DistillError(f"`accelerate launch` exited with {proc.returncode}; see the worker output above. "
                           f"Rerun the same command to resume from the last checkpoint in {out_dir}-checkpoints")
    if plan.machine_rank != 0:
        return {"steps": None, "world_size": plan.world_size, "machine_rank": plan.machine_rank}
    return json.loads(summary_file.read_text())
