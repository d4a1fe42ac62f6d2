"""Benchmarks load through the same `datasets.load_dataset` call as on the hub, from local folders
written in each hub repo's layout (file names, configs in README.md front matter, column names)."""

import json
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.filter.verify import is_correct
from distill.problems.benchmarks import BENCHMARKS, load_benchmark


def _parquet(path: Path, columns: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _configs(root: Path, yaml_body: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(f"---\nconfigs:\n{yaml_body}---\n# local copy\n")


def test_math500_layout(tmp_path):
    root = tmp_path / "MATH-500"
    root.mkdir()
    rows = [{"problem": "Compute $\\frac{1}{2}+\\frac{1}{4}$.", "solution": "...", "answer": "\\frac{3}{4}",
             "subject": "Prealgebra", "level": 2, "unique_id": "test/prealgebra/1.json"},
            {"problem": "What is $2^5$?", "solution": "...", "answer": "32", "subject": "Algebra", "level": 1,
             "unique_id": "test/algebra/7.json"}]
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    probs = load_benchmark(f"math500@{root}")
    assert [p.id for p in probs] == ["test/prealgebra/1.json", "test/algebra/7.json"]
    assert probs[0].answer == "\\frac{3}{4}" and probs[0].domain == "math" and probs[0].source == "MATH-500"
    assert is_correct("<think>1/2+1/4</think> \\boxed{0.75}", "math", probs[0].answer)
    assert len(load_benchmark(f"math500@{root}", limit=1)) == 1


@pytest.mark.parametrize("name,year", [("aime24", 2024), ("aime25", 2025)])
def test_aime_layout(tmp_path, name, year):
    root = tmp_path / name
    _parquet(root / "data" / "train-00000-of-00001.parquet",
             {"id": [60, 61], "problem": ["Find $x$ if $x+1=205$.", "Find the remainder of $2^{10}$ mod $1000$."],
              "solution": ["...", "..."], "answer": ["204", "24"], "url": ["u", "u"], "year": [str(year)] * 2})
    probs = load_benchmark(f"{name}@{root}")
    assert [p.id for p in probs] == [f"aime{year % 100}-60", f"aime{year % 100}-61"]
    assert probs[1].answer == "24" and probs[1].source == f"AIME {year}"


def test_gpqa_diamond_layout_shuffles_the_correct_option(tmp_path):
    root = tmp_path / "gpqa"
    _configs(root, "- config_name: gpqa_diamond\n  data_files: gpqa_diamond.csv\n"
                   "- config_name: gpqa_main\n  data_files: gpqa_main.csv\n")
    header = "Record ID,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
    lines = [f"rec{i},Which gas is noble number {i}?,Argon,Oxygen,Nitrogen,Hydrogen\n" for i in range(6)]
    (root / "gpqa_diamond.csv").write_text(header + "".join(lines))
    (root / "gpqa_main.csv").write_text(header)
    probs = load_benchmark(f"gpqa_diamond@{root}")
    assert len(probs) == 6 and all(p.domain == "choice" for p in probs)
    for p in probs:
        assert p.choices[ord(p.answer) - ord("A")] == "Argon"  # the letter points at the right option
        assert f"{p.answer}) Argon" in p.problem
        assert is_correct(f"\\boxed{{{p.answer}}}", "choice", p.answer, p.choices)
    assert len({p.answer for p in probs}) > 1  # shuffled: the right answer is not always A
    assert [p.answer for p in probs] == [p.answer for p in load_benchmark(f"gpqa_diamond@{root}")]  # stable


def test_gsm8k_layout(tmp_path):
    root = tmp_path / "gsm8k"
    _configs(root, "- config_name: main\n  data_files:\n  - split: train\n    path: main/train-*\n"
                   "  - split: test\n    path: main/test-*\n")
    _parquet(root / "main" / "test-00000-of-00001.parquet",
             {"question": ["Tom has 1,000 apples and buys 234 more. How many?", "2+2?"],
              "answer": ["1000+234=<<1000+234=1234>>1234\n#### 1,234", "#### 4"]})
    _parquet(root / "main" / "train-00000-of-00001.parquet", {"question": ["x"], "answer": ["#### 1"]})
    probs = load_benchmark(f"gsm8k@{root}")
    assert [p.answer for p in probs] == ["1234", "4"] and probs[0].id == "gsm8k-0"


def test_registry_names_the_hub_repos():
    assert BENCHMARKS["math500"].hub == "HuggingFaceH4/MATH-500"
    assert BENCHMARKS["gpqa_diamond"].config == "gpqa_diamond"
    with pytest.raises(DistillError, match="unknown benchmark"):
        load_benchmark("mmlu")


def test_wrong_layout_is_a_clear_error(tmp_path):
    root = tmp_path / "notmath"
    root.mkdir()
    (root / "test.jsonl").write_text(json.dumps({"question": "q", "final": "1"}) + "\n")
    with pytest.raises(DistillError, match="layout"):
        load_benchmark(f"math500@{root}")
    with pytest.raises(DistillError, match="math500@DIR"):
        load_benchmark(f"math500@{tmp_path / 'missing'}")
