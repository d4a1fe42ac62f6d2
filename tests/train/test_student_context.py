"""student.rope_theta / max_position_embeddings extend a short-context base as open-r1 did for
Qwen2.5-Math-7B (RoPE base 300k, 32k positions): the loaded student really rotates slower, and the
saved student declares it, so the export and every runtime use the base it was trained at."""

import json

from distill.recipe import load_recipe
from distill.train.sft import load_student

RECIPE = """name: ctx
student: {{model: {student}, chat_template: chatml{extra}}}
teacher: {{backend: hf, model: m}}
problems: {{path: p.jsonl}}
train: {{max_length: 256}}
eval: {{problems: p.jsonl}}
"""


def _inv_freq(model):
    return next(b for n, b in model.named_buffers() if n.endswith("inv_freq")).clone()


def test_the_recipe_sets_the_rope_base_and_positions(tmp_path, tiny_qwen2_dir):
    (tmp_path / "plain.yaml").write_text(RECIPE.format(student=tiny_qwen2_dir, extra=""))
    (tmp_path / "long.yaml").write_text(RECIPE.format(student=tiny_qwen2_dir,
                                                      extra=", rope_theta: 300000, max_position_embeddings: 2048"))
    plain, _ = load_student(load_recipe(tmp_path / "plain.yaml"))
    long, _ = load_student(load_recipe(tmp_path / "long.yaml"))
    assert plain.config.max_position_embeddings == 512
    assert long.config.max_position_embeddings == 2048
    assert long.config.rope_parameters["rope_theta"] == 300000.0
    # Lower frequencies, as a larger base gives: the config change reached the rotary embedding.
    slow, base = _inv_freq(long), _inv_freq(plain)
    assert slow[0] == base[0] and bool((slow[1:] < base[1:]).all())
    long.save_pretrained(tmp_path / "student")
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["max_position_embeddings"] == 2048
    assert saved.get("rope_parameters", {}).get("rope_theta", saved.get("rope_theta")) == 300000.0
