"""Stage 3, SFT: accepted traces in, a student HF folder out.

TRL's SFTTrainer with the `<think>` block kept in the assistant-only loss; full, LoRA or QLoRA; one
process or many through accelerate/DeepSpeed (`launch`), planned by `plan`; chat templates in
`templates`. Writes the student folder and `train_summary.json`.

    summary = distill.train.run(recipe, Path("filter/accepted.jsonl"), Path("student"))
"""

from distill.train.sft import run

__all__ = ["run"]
