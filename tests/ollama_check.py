"""Helpers for tests of Ollama's files and GGUF metadata: Go's own text/template run over an Ollama
TEMPLATE (ollama_template.go), and small real GGUF files written with gguf-py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHECKER = Path(__file__).with_name("ollama_template.go")


def go_check(template: str, cases: list[dict], tmp_path: Path) -> dict:
    """Parse and run `template` with Go's text/template: {"renders", "opening_tag", "closing_tag",
    "in_message_loop"} (the thinking tags as Ollama infers them)."""
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain: `apt-get install golang-go` (make setup installs it where apt can)")
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps({"Template": template, "Cases": cases}))
    env = {"GOCACHE": str(Path.home() / ".cache" / "go-build"), "HOME": str(Path.home()),
           "PATH": "/usr/bin:/bin:/usr/local/go/bin"}
    out = subprocess.run(["go", "run", str(CHECKER), str(spec)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def tiny_gguf(path: Path, context_length: int = 8192, n_floats: int = 512) -> Path:
    """A GGUF with the metadata llama.cpp reads for context sizing and one tensor of n random floats."""
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    for add, value in ((w.add_context_length, context_length), (w.add_block_count, 2),
                       (w.add_embedding_length, 64), (w.add_head_count, 4), (w.add_head_count_kv, 2)):
        add(value)
    w.add_tensor("token_embd.weight", np.random.default_rng(0).standard_normal(n_floats, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
