"""SFT of the student on accepted traces with TRL: full fine-tuning, LoRA or QLoRA.

The assistant turn (with its <think> block) is the only thing learned; examples longer than
`max_length` are counted and reported before training, never cut silently.

    result = run(recipe, Path("data/runs/smol/filter/accepted.jsonl"), Path("data/runs/smol/student"))
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from distill.assets import hf_folder
from distill.errors import DistillError
from distill.prompts import THINK_CLOSE, THINK_OPEN, student_messages
from distill.recipe import Recipe, save_resolved
from distill.records import BadLine, Trace, read_records, write_json
from distill.templates import apply_to, style_for
from distill.verify import split_r1


def training_messages(trace: Trace) -> list[dict]:
    """One conversation: the zero-shot R1 prompt and the teacher's trace in canonical R1 form."""
    parts = split_r1(trace.completion)
    if parts.reasoning is None:
        raise DistillError(f"trace {trace.key} has no closed <think> block; filter the traces first")
    content = f"{THINK_OPEN}\n{parts.reasoning.strip()}\n{THINK_CLOSE}\n\n{parts.answer.strip()}"
    return student_messages(trace.problem) + [{"role": "assistant", "content": content}]


def load_student(recipe: Recipe, for_training: bool = True):
    """Model and tokenizer of the recipe's student, with the reasoning chat template applied."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = hf_folder(recipe.student.model)
    tok = AutoTokenizer.from_pretrained(ref)
    apply_to(tok, style_for(tok, recipe.student.chat_template), recipe.student.prefill_think)
    kwargs: dict = {"dtype": torch.bfloat16 if recipe.train.bf16 else torch.float32}
    if recipe.train.mode == "qlora" and for_training:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
    model = AutoModelForCausalLM.from_pretrained(ref, **kwargs)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def length_report(tok, conversations: list[list[dict]], max_length: int) -> dict:
    lengths = [len(tok.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]) for c in conversations]
    over = [n for n in lengths if n > max_length]
    return {"examples": len(lengths), "max_length": max_length, "longest": max(lengths, default=0),
            "tokens": sum(lengths), "over_max_length": len(over)}


def run(recipe: Recipe, accepted_path: Path, out_dir: Path, resume: bool = True) -> dict:
    """Train the student; write the final HF folder to `out_dir` and return a summary."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    t = recipe.train
    traces = [r for r in read_records(accepted_path, Trace) if not isinstance(r, BadLine)]
    if not traces:
        raise DistillError(f"no accepted traces in {accepted_path}: sample more (sampling.n, problems.limit) "
                           "or loosen the filter")
    conversations = [training_messages(tr) for tr in traces]
    model, tok = load_student(recipe)
    lengths = length_report(tok, conversations, t.max_length)
    if lengths["over_max_length"]:
        print(f"warning: {lengths['over_max_length']} of {lengths['examples']} examples exceed "
              f"train.max_length={t.max_length} (longest {lengths['longest']}) and will be truncated")

    out_dir = Path(out_dir)
    ckpt_dir = out_dir.parent / (out_dir.name + "-checkpoints")
    args = SFTConfig(
        output_dir=str(ckpt_dir), learning_rate=t.learning_rate, num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps, per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, max_length=t.max_length,
        packing=t.packing, lr_scheduler_type=t.lr_scheduler_type, warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay, gradient_checkpointing=t.gradient_checkpointing, bf16=t.bf16,
        seed=t.seed, logging_steps=t.logging_steps, save_steps=t.save_steps, save_total_limit=2,
        assistant_only_loss=t.assistant_only_loss, report_to="none", dataloader_num_workers=0,
        use_cpu=not _cuda(), disable_tqdm=False,
    )
    peft_config = None
    if t.mode in ("lora", "qlora"):
        from peft import LoraConfig

        peft_config = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                                 target_modules=t.lora_target_modules, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([{"messages": c} for c in conversations]),
                         processing_class=tok, peft_config=peft_config)
    save_resolved(recipe, ckpt_dir / "recipe.yaml")
    last = _last_checkpoint(ckpt_dir) if resume else None
    trainer.train(resume_from_checkpoint=last)

    final = trainer.model
    if peft_config is not None:
        final = final.merge_and_unload()
    tmp = out_dir.parent / (out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    final.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    save_resolved(recipe, tmp / "recipe.yaml")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"mode": t.mode, "steps": trainer.state.global_step, "losses": losses,
               "resumed_from": last, "lengths": lengths,
               "train_runtime_s": next((h["train_runtime"] for h in trainer.state.log_history
                                        if "train_runtime" in h), None)}
    (tmp / "train_summary.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    write_json(out_dir.parent / "train_summary.json", summary)
    return summary


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
