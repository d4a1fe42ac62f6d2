import subprocess
import sys
from pathlib import Path

import pytest

from distill.errors import RecipeError
from distill.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_there_is_a_recipe_for_every_size():
    names = {p.stem for p in RECIPES}
    assert {"smol", "1.5b", "7b", "7b-qlora", "8b", "14b", "14b-qlora"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_validates_and_opens_with_its_command(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    head = path.read_text().splitlines()[:4]
    assert head[0].startswith("#") and any("distill run" in line or "make student" in line for line in head)
    assert any("Hardware" in line for line in head)


BROKEN = """name: broken
student:
  model: embedded:smollm2-135m-instruct
teacher:
  backend: openai
  model: r1
problems:
  path: data/problems/arithmetic.jsonl
train:
  learning_rate: -1
  epochs: 3
eval:
  problems: data/problems/arithmetic.jsonl
"""


def test_three_mistakes_are_reported_together_with_key_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    keys = [k for k, _ in err.value.problems]
    assert len(keys) == 3, err.value
    text = str(err.value)
    assert "teacher (line 4)" in text and "base_urls" in text
    assert "train.learning_rate (line 10)" in text and "greater than 0" in text
    assert "train.epochs (line 11)" in text and "unknown key" in text


def test_validate_cli_exits_2_and_names_all_problems(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    proc = subprocess.run([sys.executable, "-m", "distill", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "3 problem(s)" in proc.stderr and "Traceback" not in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "distill", "validate", str(ROOT / "recipes/smol.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_set_overrides_the_file_and_is_checked(tmp_path):
    recipe = load_recipe(ROOT / "recipes/smol.yaml", ["train.learning_rate=2e-5", "sampling.n=7"])
    assert recipe.train.learning_rate == 2e-5 and recipe.sampling.n == 7
    with pytest.raises(RecipeError, match="sampling.n"):
        load_recipe(ROOT / "recipes/smol.yaml", ["sampling.n=0"])
    with pytest.raises(RecipeError, match="unknown key"):
        load_recipe(ROOT / "recipes/smol.yaml", ["train.learning_rat=1"])


def test_make_student_with_unknown_size_lists_the_sizes():
    proc = subprocess.run(["make", "-s", "-C", str(ROOT), "check-size", "SIZE=nope"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unknown SIZE=nope" in proc.stderr and "smol" in proc.stderr and "7b" in proc.stderr
