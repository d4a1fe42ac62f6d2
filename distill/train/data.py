"""Training data: accepted traces tokenized once into an on-disk `datasets` cache that every rank shares.

Each trace becomes the zero-shot R1 conversation the student will see, tokenized with the student's
chat template (assistant-only masks from `{% generation %}`). Examples longer than `max_length` are
dropped and counted, never truncated: a cut trace keeps a `<think>` with no end, no answer and no
stop token, which teaches the endless generation distilled students are known for. A slice of the
problems (chosen by a hash of the problem id, so every trace of a problem lands on the same side)
is held out for eval loss.

The cache folder is keyed by the tokenizer, the chat template, the traces file and `max_length`;
rank 0 of each node builds it with `datasets.map(num_proc=...)` while the other ranks wait, then
every rank memory-maps it.

    data = prepare(recipe, tok, Path("filter/accepted.jsonl"), Path("data/runs/x/train-data"))
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.r1 import THINK_CLOSE, THINK_OPEN, split_r1
from distill.recipe import Recipe
from distill.records import BadLine, Trace, read_records, short_sha, write_json
from distill.sample import prompts
from distill.sample.prompts import student_messages

CACHE_VERSION = 1  # bump when the cached columns change


def training_messages(trace: Trace) -> list[dict]:
    """One conversation: the zero-shot prompt of the trace's domain and the teacher's trace in R1 form."""
    parts = split_r1(trace.completion)
    if parts.reasoning is None:
        raise DistillError(f"trace {trace.key} has no closed <think> block; filter the traces first")
    content = f"{THINK_OPEN}\n{parts.reasoning.strip()}\n{THINK_CLOSE}\n\n{parts.answer.strip()}"
    return student_messages(trace) + [{"role": "assistant", "content": content}]


def held_out(problem_id: str, fraction: float) -> bool:
    """Whether a problem belongs to the eval split: a stable hash, so reruns and ranks agree."""
    if fraction <= 0:
        return False
    bucket = int(hashlib.sha256(problem_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def tokenizer_fingerprint(tok) -> str:
    """What makes token ids: the tokenizer's whole definition, its chat template and special tokens."""
    backend = getattr(tok, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else json.dumps(tok.get_vocab(), sort_keys=True)
    parts = [definition, tok.chat_template or "", tok.eos_token or "", tok.pad_token or "", tok.bos_token or ""]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


@dataclass
class TrainData:
    train: object  # datasets.Dataset with input_ids and assistant_masks
    eval: object | None
    stats: dict  # examples, kept, dropped_over_max_length, longest, tokens, eval_examples
    folder: Path


def cache_key(tok, accepted: Path, max_length: int, eval_fraction: float, assistant_only: bool) -> str:
    # The student's prompts are code (distill/sample/prompts.py): a changed prompt is a new cache.
    prompt_code = hashlib.sha256(Path(prompts.__file__).read_bytes()).hexdigest()[:16]
    parts = [CACHE_VERSION, tokenizer_fingerprint(tok), short_sha(accepted), max_length, eval_fraction,
             assistant_only, prompt_code]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def prepare(recipe: Recipe, tok, accepted: Path, cache_root: Path) -> TrainData:
    """The tokenized train and eval splits of `accepted`, built once per key and shared by all ranks."""
    from accelerate import PartialState
    from datasets import load_from_disk

    t = recipe.train
    folder = cache_root / cache_key(tok, accepted, t.max_length, t.eval_fraction, t.assistant_only_loss)
    # Rank 0 of each node builds first; the others then find the folder (shared or node-local disk).
    with PartialState().local_main_process_first():
        if not (folder / "stats.json").is_file():
            _build(recipe, tok, accepted, folder)
    stats = json.loads((folder / "stats.json").read_text())
    train = load_from_disk(str(folder / "train"))
    evaluation = load_from_disk(str(folder / "eval")) if stats["eval_examples"] else None
    return TrainData(train=train, eval=evaluation, stats=stats, folder=folder)


def _build(recipe: Recipe, tok, accepted: Path, folder: Path) -> None:
    from datasets import Dataset, Features, List, Value

    t = recipe.train
    features = Features({"messages": List({"role": Value("string"), "content": Value("string")})})
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    stats = {"max_length": t.max_length, "traces": str(accepted)}
    held = [held_out(r.problem_id, t.eval_fraction) for r in read_records(accepted, Trace) if not isinstance(r, BadLine)]
    if held.count(False) == 0:
        raise DistillError(f"no accepted traces to train on in {accepted}: sample more (sampling.n, "
                           "problems.limit), loosen the filter, or lower train.eval_fraction")
    for split, count in (("train", held.count(False)), ("eval", held.count(True))):
        if count == 0:
            stats.update(eval_examples=0, eval_dropped_over_max_length=0)
            continue
        # Streamed from the JSONL into Arrow files: the corpus is never a Python list in memory.
        data = Dataset.from_generator(_conversations, features=features, cache_dir=str(tmp / "raw"), gen_kwargs={
            "accepted": str(accepted), "fraction": t.eval_fraction, "want_eval": split == "eval"})
        kept, info = _tokenize(data, tok, t.max_length, t.dataset_num_proc, t.assistant_only_loss)
        kept.save_to_disk(str(tmp / split))
        if split == "train":
            stats.update(examples=info["examples"], kept=len(kept), dropped_over_max_length=info["dropped"],
                         longest=info["longest"], longest_kept=info["longest_kept"], tokens=info["tokens"],
                         mean_context=info["mean_context"])
        else:
            stats.update(eval_examples=len(kept), eval_dropped_over_max_length=info["dropped"])
    shutil.rmtree(tmp / "raw", ignore_errors=True)
    write_json(tmp / "stats.json", stats)
    if folder.exists():  # another node-local rank finished the same key first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(folder)


def _conversations(accepted: str, fraction: float, want_eval: bool):
    for rec in read_records(accepted, Trace):
        if not isinstance(rec, BadLine) and held_out(rec.problem_id, fraction) == want_eval:
            yield {"messages": training_messages(rec)}


def _tokenize(dataset, tok, max_length: int, num_proc: int | None, assistant_only: bool):
    """Tokenize with the chat template and drop what exceeds max_length. `assistant_masks` (from the
    template's {% generation %} block) is the column TRL turns into labels: prompt tokens get -100."""

    def encode(example):
        enc = tok.apply_chat_template(example["messages"], tokenize=True, return_dict=True,
                                      return_assistant_tokens_mask=assistant_only)
        out = {"input_ids": enc["input_ids"], "length": len(enc["input_ids"])}
        if assistant_only:
            if 1 not in enc["assistant_masks"]:
                raise DistillError("the chat template marks no assistant tokens ({% generation %} missing); "
                                   "set `student.chat_template` to chatml or llama3")
            out["assistant_masks"] = enc["assistant_masks"]
        return out

    if len(dataset) == 0:
        return dataset, {"examples": 0, "dropped": 0, "longest": 0, "longest_kept": 0, "tokens": 0, "mean_context": 0}
    procs = num_proc if num_proc and len(dataset) >= 4 * num_proc else None  # small sets: no worker start-up
    encoded = dataset.map(encode, remove_columns=["messages"], num_proc=procs, desc="Tokenizing traces")
    lengths = encoded["length"]
    kept = encoded.filter(lambda n: n <= max_length, input_columns="length", num_proc=procs)
    kept_lengths = [n for n in lengths if n <= max_length]
    # Mean attended context of a trained token (causal, within its own example): what attention costs.
    context = sum(n * (n + 1) / 2 for n in kept_lengths) / max(sum(kept_lengths), 1)
    info = {"examples": len(lengths), "dropped": len(lengths) - len(kept), "longest": max(lengths),
            "longest_kept": max(kept_lengths, default=0), "tokens": sum(kept_lengths),
            "mean_context": round(context, 1)}
    return kept.remove_columns("length"), info

