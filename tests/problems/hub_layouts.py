"""Local folders written in the hub repos' own layouts (file paths, README `configs`, column names as
their dataset cards give them), so a test reads them with the same `datasets.load_dataset` call the
hub name takes. Small rows, but the real columns, types and quirks of each repo."""

from __future__ import annotations

import json
from pathlib import Path


def parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def configs(root: Path, body: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(f"---\nconfigs:\n{body}---\n# local copy of the hub repo\n")


def numina_row(problem: str, answer: str, **kw) -> dict:
    row = {"problem": problem, "solution": "A worked solution.", "answer": answer, "problem_type": "Algebra",
           "question_type": "math-word-problem", "problem_is_valid": "Yes", "solution_is_valid": "Yes",
           "source": "olympiads", "synthetic": False}
    return {**row, **kw}


def numina(root: Path, rows: list[dict]) -> Path:
    """AI-MO/NuminaMath-1.5: config `default`, data/train-*.parquet."""
    configs(root, "- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n")
    parquet(root / "data" / "train-00000-of-00001.parquet", rows)
    return root


def openr1_math(root: Path, rows: list[dict]) -> Path:
    """open-r1/OpenR1-Math-220k: configs default (data/), extended, all; traces beside the problem."""
    configs(root, "- config_name: all\n  data_files:\n  - split: train\n    path: all/train-*\n"
                  "- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
                  "- config_name: extended\n  data_files:\n  - split: train\n    path: extended/train-*\n")
    full = [{"problem": r["problem"], "solution": "...", "answer": r["answer"], "problem_type": "Algebra",
             "question_type": "math-word-problem", "source": "olympiads", "uuid": f"u{i}",
             "is_reasoning_complete": [True, True], "generations": ["<think>a</think> x", "<think>b</think> y"],
             "correctness_math_verify": [True, False], "correctness_llama": None, "finish_reasons": ["stop", "stop"],
             "correctness_count": 1, "messages": [{"role": "user", "content": r["problem"]}]}
            for i, r in enumerate(rows)]
    parquet(root / "data" / "train-00000-of-00001.parquet", full)
    parquet(root / "extended" / "train-00000-of-00001.parquet", full[:1])
    parquet(root / "all" / "train-00000-of-00001.parquet", full)
    return root


def math_lighteval(root: Path, rows: list[dict]) -> Path:
    """DigitalLearningGmbH/MATH-lighteval (MATH train/test): config default, data/{train,test}-*.parquet."""
    configs(root, "- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
                  "  - split: test\n    path: data/test-*\n")
    parquet(root / "data" / "train-00000-of-00001.parquet", rows)
    parquet(root / "data" / "test-00000-of-00001.parquet", rows[:1])
    return root


def codeforces_row(cid: str, **kw) -> dict:
    row = {"id": cid, "aliases": None, "contest_id": cid[:-1], "contest_name": "Round", "contest_type": "CF",
           "contest_start": 1, "contest_start_year": 2020, "index": cid[-1], "time_limit": 2.0,
           "memory_limit": 256.0, "title": f"Problem {cid}", "description": "Print the sum of two integers.",
           "input_format": "Two integers a and b.", "output_format": "One integer.",
           "interaction_format": None, "note": None, "examples": [{"input": "1 2\n", "output": "3\n"}],
           "editorial": None, "rating": 800, "tags": ["math"], "testset_size": 2,
           "official_tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 7\n", "output": "12\n"}],
           "official_tests_complete": True, "input_mode": "stdio", "generated_checker": None,
           "executable": True, "generated_tests": 0}
    return {**row, **kw}


def codeforces(root: Path, rows: list[dict]) -> Path:
    """open-r1/codeforces: configs default (data/) and verifiable (verifiable/), splits train and test."""
    configs(root, "- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
                  "  - split: test\n    path: data/test-*\n"
                  "- config_name: verifiable\n  data_files:\n  - split: train\n    path: verifiable/train-*\n"
                  "  - split: test\n    path: verifiable/test-*\n")
    parquet(root / "data" / "train-00000-of-00001.parquet", rows)
    parquet(root / "data" / "test-00000-of-00001.parquet", rows[:1])
    parquet(root / "verifiable" / "train-00000-of-00001.parquet", rows)
    parquet(root / "verifiable" / "test-00000-of-00001.parquet", rows[:1])
    return root


def taco_row(question: str, io: dict, starter: str = "") -> dict:
    return {"question": question, "solutions": json.dumps(["print(1)"]), "starter_code": starter,
            "input_output": json.dumps(io), "difficulty": "EASY", "raw_tags": "[]", "name": None,
            "source": "codeforces", "tags": "[]", "skill_types": "[]", "url": "https://example",
            "Expected Auxiliary Space": None, "time_limit": "1 seconds", "date": None, "picture_num": "0",
            "memory_limit": "256 megabytes", "Expected Time Complexity": None}


def taco(root: Path, rows: list[dict]) -> Path:
    """BAAI/TACO after its parquet conversion: config ALL, ALL/{train,test}-*.parquet."""
    configs(root, "- config_name: ALL\n  data_files:\n  - split: train\n    path: ALL/train-*\n"
                  "  - split: test\n    path: ALL/test-*\n")
    parquet(root / "ALL" / "train-00000-of-00001.parquet", rows)
    parquet(root / "ALL" / "test-00000-of-00001.parquet", rows[:1])
    return root


def apps(root: Path, rows: list[dict]) -> Path:
    """codeparrot/apps: train.jsonl and test.jsonl at the top (its apps.py script is not run)."""
    root.mkdir(parents=True, exist_ok=True)
    keep = ("problem_id", "question", "solutions", "input_output", "difficulty", "url", "starter_code")
    lines = [json.dumps({"problem_id": i, **{k: r[k] for k in keep if k in r}}) for i, r in enumerate(rows)]
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    (root / "test.jsonl").write_text(lines[0] + "\n")
    return root


def gpqa(root: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """Idavidrein/gpqa: one CSV per config (gpqa_main, gpqa_diamond, ...), split train."""
    configs(root, "- config_name: gpqa_main\n  data_files: gpqa_main.csv\n"
                  "- config_name: gpqa_diamond\n  data_files: gpqa_diamond.csv\n")
    header = "Record ID,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
    body = "".join(f"rec{i},{q},{a},{b},{c},{d}\n" for i, (q, a, b, c, d) in enumerate(rows))
    (root / "gpqa_main.csv").write_text(header + body)
    (root / "gpqa_diamond.csv").write_text(header + body.splitlines(keepends=True)[0])
    return root


def arc(root: Path, rows: list[dict]) -> Path:
    """allenai/ai2_arc: configs ARC-Challenge / ARC-Easy, choices as {text, label}, answerKey."""
    configs(root, "- config_name: ARC-Challenge\n  data_files:\n  - split: train\n    path: ARC-Challenge/train-*\n")
    parquet(root / "ARC-Challenge" / "train-00000-of-00001.parquet", rows)
    return root


def mmlu(root: Path, rows: list[dict]) -> Path:
    """cais/mmlu: config per subject (here `all`), choices a list, answer an index."""
    configs(root, "- config_name: all\n  data_files:\n  - split: test\n    path: all/test-*\n")
    parquet(root / "all" / "test-00000-of-00001.parquet", rows)
    return root
