"""Stage 3, SFT: accepted traces in, a student HF folder out.

TRL's SFTTrainer with the `<think>` block kept in the assistant-only loss; full, LoRA or QLoRA; one
process or many through accelerate/DeepSpeed (`launch`), planned by `plan`. `data` tokenizes the
traces once into a keyed on-disk cache (over-long examples dropped, an eval split held out),
`config` builds the trainer's settings (fp32 master weights, `train.sft` pass-through),
`checkpoints` keys checkpoints by what made them, `callbacks` measure throughput and memory,
`templates` holds the chat templates. Writes the student folder and `train_summary.json`.

    summary = distill.train.run(recipe, Path("filter/accepted.jsonl"), Path("student"))
"""

from distill.train.sft import run

__all__ = ["run"]
