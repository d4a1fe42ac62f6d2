"""SFT of the student on accepted traces with TRL: full fine-tuning, LoRA or QLoRA, one process or many.

The assistant turn (with its <think> block and the stop token) is the only thing learned; examples
longer than `max_length` are counted and reported before training, never cut silently. A killed run
resumes from its last checkpoint; every checkpoint carries the resolved recipe. LoRA/QLoRA adapters
are merged into the bf16 base for export. More than one process (recipe or visible GPUs) goes
through `accelerate launch` (distill/train/launch.py).

    result = run(recipe, Path("data/runs/smol/filter/accepted.jsonl"), Path("data/runs/smol/student"))
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.assets import hf_folder
from distill.errors import DistillError
from distill.r1 import THINK_CLOSE, THINK_OPEN, split_r1
from distill.recipe import Recipe, save_resolved
from distill.records import BadLine, Trace, read_records, write_json
from distill.sample.prompts import student_messages
from distill.train.templates import apply_to, style_for


def training_messages(trace: Trace) -> list[dict]:
    """One conversation: the zero-shot prompt of the trace's domain and the teacher's trace in R1 form."""
    parts = split_r1(trace.completion)
    if parts.reasoning is None:
        raise DistillError(f"trace {trace.key} has no closed <think> block; filter the traces first")
    content = f"{THINK_OPEN}\n{parts.reasoning.strip()}\n{THINK_CLOSE}\n\n{parts.answer.strip()}"
    return student_messages(trace) + [{"role": "assistant", "content": content}]


@dataclass
class TrainerSetup:
    """Everything the trainer is built from, derived from the recipe without touching weights."""

    args: Any  # trl.SFTConfig
    model_kwargs: dict = field(default_factory=dict)  # for AutoModelForCausalLM.from_pretrained
    peft_config: Any = None  # peft.LoraConfig
    quantization_config: Any = None  # transformers.BitsAndBytesConfig


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def trainer_setup(recipe: Recipe, output_dir: str | Path, cuda: bool | None = None) -> TrainerSetup:
    """SFTConfig, LoraConfig and BitsAndBytesConfig for the recipe on this machine, without loading
    the model. `cuda` overrides what the machine has (tests build the GPU recipes on CPU)."""
    import torch
    from trl import SFTConfig

    t = recipe.train
    cuda = torch.cuda.is_available() if cuda is None else cuda
    dtype = torch.bfloat16 if t.bf16 else torch.float32
    attn = t.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if cuda and _available("flash_attn") else "sdpa"
    setup = TrainerSetup(args=None, model_kwargs={"dtype": dtype, "attn_implementation": attn})
    if t.mode == "qlora":
        from transformers import BitsAndBytesConfig

        setup.quantization_config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_storage=dtype,
        )
        setup.model_kwargs["quantization_config"] = setup.quantization_config
    if t.mode in ("lora", "qlora"):
        from peft import LoraConfig

        setup.peft_config = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                                       target_modules=t.lora_target_modules, task_type="CAUSAL_LM")
    kwargs = sft_kwargs(recipe, output_dir, cuda)
    if not torch.cuda.is_available():
        kwargs["use_cpu"] = True  # building a GPU recipe's config on a CPU machine (SFTConfig checks)
    setup.args = SFTConfig(**kwargs)
    return setup


def sft_kwargs(recipe: Recipe, output_dir: str | Path, cuda: bool) -> dict:
    """The SFTConfig arguments of a recipe on a machine with or without CUDA."""
    from trl import SFTConfig

    t = recipe.train
    liger = t.use_liger_kernel
    if liger == "auto":
        liger = cuda and _available("liger_kernel")
    optim = t.optim
    if optim == "auto":
        # Paged optimiser states (QLoRA paper) absorb memory spikes from long traces; bnb pages need CUDA.
        optim = "paged_adamw_32bit" if t.mode == "qlora" and cuda else "adamw_torch"
    return dict(
        output_dir=str(output_dir), learning_rate=t.learning_rate, num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps, per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, max_length=t.max_length,
        packing=t.packing, packing_strategy=t.packing_strategy, padding_free=t.padding_free,
        lr_scheduler_type=t.lr_scheduler_type, lr_scheduler_kwargs=t.lr_scheduler_kwargs,
        warmup_steps=t.warmup_steps, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, optim=optim,
        **_checkpointing(SFTConfig, t.gradient_checkpointing), bf16=t.bf16,
        use_liger_kernel=liger, seed=t.seed, logging_steps=t.logging_steps,
        save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        assistant_only_loss=t.assistant_only_loss, report_to="none", dataloader_num_workers=0,
        use_cpu=not cuda, disable_tqdm=False,
    )


def _checkpointing(config_cls, on: bool) -> dict:
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing; older keeps the old name.
    import dataclasses

    name = "activation_checkpointing" if any(f.name == "activation_checkpointing"
                                             for f in dataclasses.fields(config_cls)) else "gradient_checkpointing"
    # Non-reentrant checkpointing works with frozen (LoRA) inputs and with DeepSpeed ZeRO-3.
    return {name: on, f"{name}_kwargs": {"use_reentrant": False} if on else None}


def load_tokenizer(recipe: Recipe):
    """The student's tokenizer with the reasoning chat template and its stop token as EOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_folder(recipe.student.model))
    apply_to(tok, style_for(tok, recipe.student.chat_template), recipe.student.prefill_think)
    return tok


def load_student(recipe: Recipe, for_training: bool = True, model_kwargs: dict | None = None):
    """Model and tokenizer of the recipe's student, with the reasoning chat template applied and the
    stop token written into generation_config (so `generate` and exported GGUFs stop on it)."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(recipe)
    kwargs = dict(model_kwargs or {"dtype": torch.bfloat16 if recipe.train.bf16 else torch.float32})
    if not for_training:
        kwargs.pop("quantization_config", None)
    context = student_context(recipe)
    if context:
        from transformers import AutoConfig

        kwargs["config"] = AutoConfig.from_pretrained(hf_folder(recipe.student.model))
        apply_context(kwargs["config"], **context)
    model = AutoModelForCausalLM.from_pretrained(hf_folder(recipe.student.model), **kwargs)
    _set_stop(model, tok)
    return model, tok


def student_context(recipe: Recipe) -> dict:
    s = recipe.student
    return {k: v for k, v in (("rope_theta", s.rope_theta), ("max_position_embeddings", s.max_position_embeddings))
            if v is not None}


def apply_context(config, rope_theta: float | None = None, max_position_embeddings: int | None = None) -> None:
    """Longer context for a short-context base, as open-r1 made open-r1/Qwen2.5-Math-7B-RoPE-300k
    (config only; training adapts the weights). The saved student keeps the new config, so the
    export and every runtime use the RoPE base it was trained at."""
    if rope_theta is not None:
        params = getattr(config, "rope_parameters", None)
        if isinstance(params, dict):  # transformers 5 keeps the RoPE base here; rope_theta is ignored
            config.rope_parameters = {**params, "rope_theta": float(rope_theta)}
        else:
            config.rope_theta = float(rope_theta)
    if max_position_embeddings is not None:
        config.max_position_embeddings = max_position_embeddings
        if getattr(config, "sliding_window", None):  # Qwen2.5-Math ships a 4k window (unused) with 4k positions
            config.sliding_window = max_position_embeddings


def _set_stop(model, tok) -> None:
    # Base models ship generation_config with their pretraining EOS (<|endoftext|>, <|end_of_text|>);
    # the chat turn ends on the template's stop token, which is what generation must stop on.
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.eos_token_id


def length_report(tok, conversations: list[list[dict]], max_length: int) -> dict:
    lengths = [len(tok.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]) for c in conversations]
    over = [n for n in lengths if n > max_length]
    return {"examples": len(lengths), "max_length": max_length, "longest": max(lengths, default=0),
            "tokens": sum(lengths), "over_max_length": len(over)}


def _recipe_callback(recipe: Recipe):
    from transformers import TrainerCallback

    class SaveRecipe(TrainerCallback):
        """Writes the resolved recipe into every checkpoint folder, so any checkpoint says what made it."""

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                save_resolved(recipe, Path(args.output_dir) / f"checkpoint-{state.global_step}" / "recipe.yaml")

    return SaveRecipe()


def run(recipe: Recipe, accepted_path: Path, out_dir: Path, resume: bool = True, callbacks: list | None = None) -> dict:
    """Train the student; write the final HF folder to `out_dir` and return a summary."""
    from distill.train import launch

    if not launch.inside_launch():
        plan = launch.plan_launch(recipe.train)
        if plan.world_size > 1:
            return launch.launch(recipe, accepted_path, out_dir, plan)
    return _train(recipe, Path(accepted_path), Path(out_dir), resume, callbacks or [])


def _train(recipe: Recipe, accepted_path: Path, out_dir: Path, resume: bool, callbacks: list) -> dict:
    from datasets import Dataset
    from trl import SFTTrainer

    t = recipe.train
    traces = [r for r in read_records(accepted_path, Trace) if not isinstance(r, BadLine)]
    if not traces:
        raise DistillError(f"no accepted traces in {accepted_path}: sample more (sampling.n, problems.limit) "
                           "or loosen the filter")
    conversations = [training_messages(tr) for tr in traces]
    ckpt_dir = out_dir.parent / (out_dir.name + "-checkpoints")
    # The config comes first: under ZeRO-3 it tells from_pretrained to load straight into shards.
    setup = trainer_setup(recipe, ckpt_dir)
    model, tok = load_student(recipe, model_kwargs=setup.model_kwargs)
    lengths = length_report(tok, conversations, t.max_length)
    is_main = setup.args.process_index == 0
    if lengths["over_max_length"] and is_main:
        fate = "split into pieces" if t.packing and t.packing_strategy == "bfd_split" else "truncated"
        print(f"warning: {lengths['over_max_length']} of {lengths['examples']} examples exceed "
              f"train.max_length={t.max_length} (longest {lengths['longest']} tokens) and will be {fate}; "
              f"raise train.max_length or set filter.max_completion_tokens", flush=True)

    # No KV cache in training: with a cache, transformers does not derive the per-example attention
    # blocks from packed position ids, and sdpa/eager would attend across packed examples.
    model.config.use_cache = False
    trainer = SFTTrainer(model=model, args=setup.args, processing_class=tok, peft_config=setup.peft_config,
                         train_dataset=Dataset.from_list([{"messages": c} for c in conversations]),
                         callbacks=[_recipe_callback(recipe), *callbacks])
    if is_main:
        save_resolved(recipe, ckpt_dir / "recipe.yaml")
    last = _last_checkpoint(ckpt_dir) if resume else None
    if last and is_main:
        print(f"resuming from {last}", flush=True)
    trainer.train(resume_from_checkpoint=last)

    trainer.model.config.use_cache = True  # the saved model generates with a cache again
    tmp = out_dir.parent / (out_dir.name + ".tmp")
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    # save_model gathers ZeRO-3 shards; with LoRA it writes the adapter, merged below into the base.
    trainer.save_model(str(tmp / "adapter" if setup.peft_config is not None else tmp))
    trainer.accelerator.wait_for_everyone()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"mode": t.mode, "steps": trainer.state.global_step, "losses": losses,
               "resumed_from": last, "lengths": lengths, "world_size": setup.args.world_size,
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


def _merge_adapter(recipe: Recipe, adapter_dir: Path, dest: Path) -> None:
    """Merge LoRA/QLoRA adapters into the unquantized base (bf16, or fp32 off bf16) and save it plain:
    merging into 4-bit weights would bake the quantisation error into the exported model."""
    import torch
    from peft import PeftModel

    base, tok = load_student(recipe, for_training=False,
                             model_kwargs={"dtype": torch.bfloat16 if recipe.train.bf16 else torch.float32})
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    _set_stop(merged, tok)
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


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete checkpoint. SaveRecipe writes recipe.yaml in on_save, after the Trainer has
    written everything else, so a folder without it was torn by a kill mid-save and is skipped."""
    if not ckpt_dir.is_dir():
        return None
    found = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()),
                   key=lambda p: int(p.name.removeprefix("checkpoint-")), reverse=True)
    for folder in found:
        if (folder / "recipe.yaml").is_file() and (folder / "trainer_state.json").is_file():
            return str(folder)
        print(f"warning: skipping incomplete checkpoint {folder} (the run was killed while saving it)", flush=True)
    return None


def main(argv: list[str] | None = None) -> None:
    """What each `accelerate launch` worker runs: `python -m distill.train.sft RECIPE ACCEPTED OUT_DIR`."""
    import sys

    from distill.recipe import load_recipe

    recipe_file, accepted, out_dir = (argv or sys.argv[1:])[:3]
    run(load_recipe(recipe_file), Path(accepted), Path(out_dir))


if __name__ == "__main__":
    main()
