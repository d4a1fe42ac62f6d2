"""SFT of the student on accepted traces with TRL: full fine-tuning, LoRA or QLoRA, one process or many.

The assistant turn (with its <think> block and the stop token) is the only thing learned; examples
longer than `max_length` are dropped and counted (distill/train/data.py), never cut. Checkpoints are
keyed by what made them (distill/train/checkpoints.py): a rerun resumes only the same run. A full
fine-tune without DeepSpeed keeps fp32 master weights under bf16 autocast. LoRA/QLoRA adapters are
merged into the unquantized base for export. More than one process, or any DeepSpeed config, goes
through `accelerate launch` (distill/train/launch.py).

    result = run(recipe, Path("data/runs/smol/filter/accepted.jsonl"), Path("data/runs/smol/student"))
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from distill.errors import DistillError
from distill.recipe import Recipe, save_resolved
from distill.records import write_json
from distill.train import checkpoints
from distill.train.config import (
    apply_context,
    bf16_on,
    load_student,
    load_tokenizer,
    set_stop,
    student_context,
    trainer_setup,
)
from distill.train.data import training_messages

__all__ = ["apply_context", "load_student", "load_tokenizer", "run", "student_context", "trainer_setup",
           "training_messages"]


def checkpoint_dir(out_dir: Path) -> Path:
    return out_dir.parent / (out_dir.name + "-checkpoints")


def run(recipe: Recipe, accepted_path: Path, out_dir: Path, resume: bool = True, callbacks: list | None = None) -> dict:
    """Train the student; write the final HF folder to `out_dir` and return a summary. `resume=False`
    (`distill train --fresh`) moves existing checkpoints aside instead of continuing them."""
    from distill.train import launch

    accepted_path, out_dir = Path(accepted_path), Path(out_dir)
    if not accepted_path.is_file():
        raise DistillError(f"{accepted_path} not found; run the filter stage first (`distill run RECIPE --to filter`)")
    if not launch.inside_launch():
        plan = launch.plan_launch(recipe.train)
        if plan.machine_rank == 0:  # the first node owns the (shared) checkpoint folder
            moved = checkpoints.claim_folder(checkpoint_dir(out_dir), checkpoints.run_key(recipe, accepted_path),
                                             fresh=not resume)
            if moved:
                print(f"checkpoints of another run (other data or train settings{', or --fresh' if not resume else ''})"
                      f" moved aside to {moved}; training from step 0", flush=True)
        if launch.needs_launch(recipe.train, plan):
            return launch.launch(recipe, accepted_path, out_dir, plan)
    return _train(recipe, accepted_path, out_dir, callbacks or [])


def _train(recipe: Recipe, accepted_path: Path, out_dir: Path, callbacks: list) -> dict:
    from trl import SFTTrainer

    from distill.train.callbacks import SaveRecipe, Throughput
    from distill.train.data import prepare

    t = recipe.train
    ckpt_dir = checkpoint_dir(out_dir)
    key = checkpoints.run_key(recipe, accepted_path)
    tok = load_tokenizer(recipe)
    # The config comes first: under ZeRO-3 it tells from_pretrained to load straight into shards.
    setup = trainer_setup(recipe, ckpt_dir, tok=tok)
    is_main = setup.args.process_index == 0
    data = prepare(recipe, tok, accepted_path, out_dir.parent / "train-data")
    stats = data.stats
    if stats["dropped_over_max_length"] and is_main:
        print(f"warning: dropped {stats['dropped_over_max_length']} of {stats['examples']} examples longer than "
              f"train.max_length={t.max_length} (longest {stats['longest']} tokens); a cut trace would teach "
              f"the student to never finish. Raise train.max_length or set filter.max_completion_tokens", flush=True)
    if not len(data.train):
        raise DistillError(f"every example is longer than train.max_length={t.max_length} (longest "
                           f"{stats['longest']} tokens): raise train.max_length")
    if is_main and setup.warning:
        print(f"warning: {setup.warning}", flush=True)
    if data.eval is not None:  # eval loss on the held-out problems at every eval_steps (default: every save)
        from transformers.trainer_utils import IntervalStrategy

        setup.args.eval_strategy = IntervalStrategy.STEPS
    model, tok = load_student(recipe, model_kwargs=setup.model_kwargs)
    # No KV cache in training: with a cache, transformers does not derive the per-example attention
    # blocks from packed position ids, and sdpa/eager would attend across packed examples.
    model.config.use_cache = False
    throughput = Throughput()
    trainer = SFTTrainer(model=model, args=setup.args, processing_class=tok, peft_config=setup.peft_config,
                         train_dataset=data.train, eval_dataset=data.eval,
                         callbacks=[SaveRecipe(recipe), throughput, *callbacks])
    _expose_trainable_token_bias(trainer.model)
    if is_main:
        save_resolved(recipe, ckpt_dir / "recipe.yaml")
    last = checkpoints.last_checkpoint(ckpt_dir, key)
    if last and is_main:
        print(f"resuming from {last}", flush=True)
    trainer.train(resume_from_checkpoint=last)
    measured = throughput.summary()
    eval_loss = trainer.evaluate()["eval_loss"] if data.eval is not None else None

    trainer.model.config.use_cache = True  # the saved model generates with a cache again
    if setup.cast_for_save is not None:  # fp32 master weights: ship the student in the recipe's dtype
        trainer.model.to(setup.cast_for_save)
    tmp = out_dir.parent / (out_dir.name + ".tmp")
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    # save_model gathers ZeRO-3 shards; with LoRA it writes the adapter, merged below into the base.
    trainer.save_model(str(tmp / "adapter" if setup.peft_config is not None else tmp))
    trainer.accelerator.wait_for_everyone()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"mode": t.mode, "steps": trainer.state.global_step, "losses": losses, "eval_loss": eval_loss,
               "resumed_from": last, "run_key": key, "data": stats, "world_size": setup.args.world_size,
               "attn_implementation": setup.model_kwargs.get("attn_implementation"),
               "master_weights": setup.master_weights, "optimizer": _optimizer_chain(trainer.optimizer),
               "throughput": measured,
               "train_runtime_s": next((h["train_runtime"] for h in trainer.state.log_history
                                        if "train_runtime" in h), None)}
    if not is_main:
        return summary
    if setup.peft_config is not None:
        _merge_adapter(recipe, tmp / "adapter", tmp)
    tok.save_pretrained(tmp)
    _fix_generation_config(tmp, tok)
    save_resolved(recipe, tmp / "recipe.yaml")
    (tmp / "train_summary.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    write_json(out_dir.parent / "train_summary.json", summary)
    return summary


def _expose_trainable_token_bias(model) -> None:
    """TRL's tiled LM head reads `lm_head.weight` and `lm_head.bias` directly. PEFT's trainable-token
    wrapper (Llama-3 stop-token rows) answers `.weight` with the base rows plus the trained ones but has
    no `.bias`; a bias-free head (every Llama/Qwen) gets an explicit None, so the trained rows are used."""
    for module in model.modules():
        if type(module).__name__ == "TrainableTokensWrapper":
            base = module.token_adapter.base_layer
            if getattr(base, "bias", None) is None and "bias" not in module.__dict__:
                module.__dict__["bias"] = None


def _optimizer_chain(opt) -> str:
    """The optimizer as wrapped, e.g. AcceleratedOptimizer/DeepSpeedZeroOptimizer_Stage3/DeepSpeedCPUAdam."""
    names = []
    while opt is not None and len(names) < 5:
        names.append(type(opt).__name__)
        opt = getattr(opt, "optimizer", None)
    return "/".join(names)


def _merge_adapter(recipe: Recipe, adapter_dir: Path, dest: Path) -> None:
    """Merge LoRA/QLoRA adapters into the unquantized base (bf16, or fp32 off bf16) and save it plain:
    merging into 4-bit weights would bake the quantisation error into the exported model."""
    import torch
    from peft import PeftModel

    base, tok = load_student(recipe, for_training=False,
                             model_kwargs={"dtype": torch.bfloat16 if bf16_on(recipe) else torch.float32})
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    set_stop(merged, tok)
    merged.save_pretrained(dest)
    shutil.rmtree(adapter_dir)


def _fix_generation_config(folder: Path, tok) -> None:
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(folder)
    except OSError:
        gen = GenerationConfig()
    gen.eos_token_id, gen.pad_token_id = tok.eos_token_id, tok.pad_token_id
    gen.save_pretrained(folder)


def main(argv: list[str] | None = None) -> None:
    """What each `accelerate launch` worker runs: `python -m distill.train.sft RECIPE ACCEPTED OUT_DIR`."""
    import sys

    from distill.recipe import load_recipe

    recipe_file, accepted, out_dir = (argv or sys.argv[1:])[:3]
    run(load_recipe(recipe_file), Path(accepted), Path(out_dir))


if __name__ == "__main__":
    main()
