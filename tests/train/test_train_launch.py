"""How `distill train` decides to launch: process counts from the recipe, the visible GPUs and the
torchrun/Slurm environment, and the accelerate config it writes (the real launches are in
test_train_deepspeed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import DistillError, RecipeError
from distill.recipe import TrainCfg, load_recipe
from distill.train import launch

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_one_process_without_gpus_or_config():
    plan = launch.plan_launch(TrainCfg(), env={}, gpus=0)
    assert plan.world_size == 1 and plan.config is None


def test_visible_gpus_ask_for_ddp():
    plan = launch.plan_launch(TrainCfg(), env={}, gpus=4)
    assert plan.world_size == 4 and plan.config == "ddp"


def test_multi_node_from_torchrun_environment(tmp_path):
    env = {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29511"}
    plan = launch.plan_launch(TrainCfg(accelerate_config="zero3", num_processes=8), env=env, gpus=8)
    assert plan.world_size == 16
    cfg = yaml.safe_load(launch.resolved_accelerate_config(plan, tmp_path / "a.yaml").read_text())
    assert (cfg["num_processes"], cfg["num_machines"], cfg["machine_rank"]) == (16, 2, 1)
    assert (cfg["main_process_ip"], cfg["main_process_port"]) == ("10.0.0.7", 29511)
    ds = Path(cfg["deepspeed_config_file"] if "deepspeed_config_file" in cfg else cfg["deepspeed_config"]["deepspeed_config_file"])
    assert ds.is_absolute() and ds.name == "zero3.json" and ds.is_file()
    assert cfg["use_cpu"] is False and launch.deepspeed_stage(TrainCfg(accelerate_config="zero3")) == 3


def test_cpu_workers_use_gloo_types(tmp_path):
    plan = launch.plan_launch(TrainCfg(accelerate_config="ddp", num_processes=2), env={}, gpus=0)
    cfg = yaml.safe_load(launch.resolved_accelerate_config(plan, tmp_path / "a.yaml").read_text())
    assert cfg["distributed_type"] == "MULTI_CPU" and cfg["use_cpu"] is True
    cmd = launch.launch_command(plan, tmp_path / "a.yaml", tmp_path / "r.yaml", tmp_path / "acc.jsonl", tmp_path / "out")
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--config_file"] and "distill.train.sft" in cmd


def test_every_named_config_exists_with_its_deepspeed_json():
    for name in launch.NAMED_CONFIGS:
        cfg = yaml.safe_load(launch.config_path(name).read_text())
        ds = (cfg.get("deepspeed_config") or {}).get("deepspeed_config_file")
        assert ds is None or (RECIPES.parent / ds).is_file()
    assert launch.deepspeed_stage(TrainCfg(accelerate_config="zero2")) == 2


def test_unknown_config_and_qlora_zero3_are_clear_errors(tmp_path):
    with pytest.raises(DistillError, match="accelerate config"):
        launch.config_path("zero9")
    (tmp_path / "r.yaml").write_text((RECIPES / "7b-qlora.yaml").read_text())
    with pytest.raises(RecipeError, match="ZeRO-3"):
        load_recipe(tmp_path / "r.yaml", ["train.accelerate_config=zero3"])


def test_inside_launch_reads_the_worker_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launch.inside_launch()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launch.inside_launch()


def test_train_cli_without_traces_is_a_clear_error():
    result = CliRunner().invoke(app, ["train", str(RECIPES / "smol.yaml")])
    assert result.exit_code != 0 and "accepted.jsonl" in str(result.output) + str(result.exception)


def test_one_process_deepspeed_still_launches():
    one = launch.plan_launch(TrainCfg(accelerate_config="zero3", num_processes=1), env={}, gpus=1)
    assert one.world_size == 1 and launch.needs_launch(TrainCfg(accelerate_config="zero3"), one)
    assert not launch.needs_launch(TrainCfg(), launch.plan_launch(TrainCfg(), env={}, gpus=1))


@pytest.mark.parametrize("config", ["zero3", "zero3_offload"])
def test_two_machine_launch_resolves_to_one_torchrun_per_node(config, tmp_path):
    """Dry run of what `accelerate launch` does with the written config on node 1 of 2: DeepSpeed's
    standard launcher hands torchrun 2 nodes x 8 processes, this node's rank and the rendezvous, and
    never builds a pdsh/hostfile `deepspeed` command."""
    pytest.importorskip("deepspeed")
    import torch.distributed.run as distrib_run
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import prepare_deepspeed_cmd_env
    from accelerate.utils.launch import _filter_args

    env = {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29511"}
    plan = launch.plan_launch(TrainCfg(accelerate_config=config, num_processes=8), env=env, gpus=8)
    cfg_file = launch.resolved_accelerate_config(plan, tmp_path / "a.yaml")
    cmd = launch.launch_command(plan, cfg_file, tmp_path / "r.yaml", tmp_path / "acc.jsonl", tmp_path / "out")
    args = launch_command_parser().parse_args(cmd[cmd.index("--config_file"):])
    args, defaults, _ = _validate_launch_command(args)
    assert args.use_deepspeed and not args.cpu and args.deepspeed_multinode_launcher == "standard"
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
    ds_cmd, ds_env = prepare_deepspeed_cmd_env(args)
    assert ds_cmd is None  # the pdsh path would build a `deepspeed --hostfile ...` command here
    torchrun = _filter_args(args, distrib_run.get_args_parser(),
                            ["--training_script", args.training_script, "--training_script_args", args.training_script_args])
    assert (torchrun.nnodes, torchrun.node_rank, torchrun.nproc_per_node) == ("2", 1, "8")
    rendezvous = torchrun.rdzv_endpoint or f"{torchrun.master_addr}:{torchrun.master_port}"
    assert rendezvous == "10.0.0.7:29511" and torchrun.rdzv_backend == "static"
    assert ds_env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert Path(ds_env["ACCELERATE_DEEPSPEED_CONFIG_FILE"]) == RECIPES / "deepspeed" / f"{config}.json"
