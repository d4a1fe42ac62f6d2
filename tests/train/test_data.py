"""Training data: tokenized once into a keyed on-disk cache, over-long examples dropped and counted
(never cut), and a held-out split by problem."""

from __future__ import annotations

from distill.recipe import load_recipe
from distill.records import Trace, write_jsonl
from distill.train import data as train_data
from distill.train.config import load_tokenizer

RECIPE = """
name: t
student: {{model: {student}}}
teacher: {{backend: openai, model: m, base_urls: ["http://127.0.0.1:1/v1"]}}
problems: {{path: p.jsonl}}
train: {{max_length: {max_length}, eval_fraction: {fraction}}}
eval: {{problems: p.jsonl}}
"""


def _traces(n=12, long_every=4):
    out = []
    for i in range(n):
        reasoning = " ".join(["carry the one"] * (80 if i % long_every == 0 else 2))
        for k in range(2):
            out.append(Trace(problem_id=f"p{i}", sample_index=k, problem=f"What is {i} + 2?", answer=str(i + 2),
                             teacher="t", completion=f"<think>\n{reasoning}\n</think>\n\n\\boxed{{{i + 2}}}"))
    return out


def _setup(tmp_path, student, max_length=128, fraction=0.0):
    (tmp_path / "r.yaml").write_text(RECIPE.format(student=student, max_length=max_length, fraction=fraction))
    write_jsonl(tmp_path / "accepted.jsonl", _traces())
    recipe = load_recipe(tmp_path / "r.yaml")
    return recipe, load_tokenizer(recipe)


def test_over_long_examples_are_dropped_and_counted_never_cut(tiny_qwen2_dir, tmp_path):
    recipe, tok = _setup(tmp_path, tiny_qwen2_dir)
    d = train_data.prepare(recipe, tok, tmp_path / "accepted.jsonl", tmp_path / "cache")
    assert d.stats["examples"] == 24 and d.stats["dropped_over_max_length"] == 6 and d.stats["kept"] == 18
    assert d.stats["longest"] > 128 >= d.stats["longest_kept"]
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    for row in d.train:  # every kept example is whole: it ends on the learned stop token (plus the newline)
        learned = [t for t, m in zip(row["input_ids"], row["assistant_masks"]) if m]
        assert learned[-1] == stop and len(row["input_ids"]) <= 128
    assert d.eval is None


def test_cache_is_built_once_and_keyed_by_max_length(tiny_qwen2_dir, tmp_path, monkeypatch):
    recipe, tok = _setup(tmp_path, tiny_qwen2_dir)
    first = train_data.prepare(recipe, tok, tmp_path / "accepted.jsonl", tmp_path / "cache")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was rebuilt for the same key")

    monkeypatch.setattr(train_data, "_build", no_rebuild)
    again = train_data.prepare(recipe, tok, tmp_path / "accepted.jsonl", tmp_path / "cache")
    assert again.folder == first.folder and len(again.train) == len(first.train)
    monkeypatch.undo()
    longer, _ = _setup(tmp_path, tiny_qwen2_dir, max_length=512)
    wide = train_data.prepare(longer, tok, tmp_path / "accepted.jsonl", tmp_path / "cache")
    assert wide.folder != first.folder and wide.stats["dropped_over_max_length"] == 0


def test_eval_split_holds_out_whole_problems(tiny_qwen2_dir, tmp_path):
    recipe, tok = _setup(tmp_path, tiny_qwen2_dir, max_length=512, fraction=0.4)
    d = train_data.prepare(recipe, tok, tmp_path / "accepted.jsonl", tmp_path / "cache")
    held = {f"p{i}" for i in range(12) if train_data.held_out(f"p{i}", 0.4)}
    assert 0 < len(held) < 12
    assert d.stats["eval_examples"] == 2 * len(held) and d.stats["kept"] == 24 - 2 * len(held)
    prompts = {tok.decode(r["input_ids"]) for r in d.eval}
    assert all(any(f"What is {p[1:]} + 2?" in text for text in prompts) for p in held)
