"""`distill publish`: what reaches the hub repo. The hub cannot be reached here, so a named stand-in
takes huggingface_hub's `create_repo`/`upload_folder` calls and keeps the files the real call would
send (huggingface_hub's own `allow_patterns` filter), in a folder the test reads back: the GGUFs,
manifest, card, Modelfile, and Ollama's `template` (parsed by Go's text/template) and `params`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from ollama_check import go_check, tiny_gguf

from distill.errors import DistillError
from distill.laptop.publish import publish, upload_plan


@pytest.fixture
def export_dir(tmp_path):
    """An export folder as `distill export` leaves it, from before Ollama's files were written."""
    folder = tmp_path / "export" / "smol"
    folder.mkdir(parents=True)
    files = []
    for quant, ctx in (("Q8_0", 8192), ("Q4_K_M", 8192)):
        path = tiny_gguf(folder / f"smol-{quant}.gguf", ctx)
        files.append({"file": path.name, "quant": quant, "bytes": path.stat().st_size,
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    (folder / "manifest.json").write_text(json.dumps({"name": "smol", "stop_token": "<|im_end|>",
                                                      "prefill_think": True, "files": files}))
    (folder / "README.md").write_text("# smol\n")
    return folder


class HubStandIn:
    """Stand-in for the Hugging Face hub (unreachable here): records repos and keeps uploaded files."""

    def __init__(self, root: Path):
        self.root, self.repos = root, []

    def create_repo(self, repo_id, repo_type="model", private=True, exist_ok=False, **kw):
        self.repos.append((repo_id, private))

    def upload_folder(self, repo_id, folder_path, repo_type="model", allow_patterns=None, **kw):
        from huggingface_hub.utils import filter_repo_objects

        names = [p.name for p in Path(folder_path).iterdir() if p.is_file()]
        for name in filter_repo_objects(names, allow_patterns=allow_patterns):
            (self.root / repo_id).mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(folder_path) / name, self.root / repo_id / name)


def test_publish_uploads_ollama_files_beside_the_ggufs(export_dir, tmp_path, monkeypatch):
    import huggingface_hub

    hub = HubStandIn(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **kw: hub.create_repo(*a, **kw))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: hub.upload_folder(**kw))
    (export_dir / "notes.txt").write_text("not for the hub")
    assert publish(export_dir, "me/smol-r1", token="hf_test") == "https://huggingface.co/me/smol-r1"
    repo = tmp_path / "hub" / "me" / "smol-r1"
    assert hub.repos == [("me/smol-r1", True)]
    assert sorted(p.name for p in repo.iterdir()) == ["Modelfile", "README.md", "manifest.json", "params",
                                                       "smol-Q4_K_M.gguf", "smol-Q8_0.gguf", "template"]
    params = json.loads((repo / "params").read_text())
    assert params == {"stop": ["<|im_end|>", "<|im_start|>"], "temperature": 0.6, "top_p": 0.95, "num_ctx": 8192}
    got = go_check((repo / "template").read_text(), [{"Messages": [{"Role": "user", "Content": "hi"}],
                                                      "Think": True, "IsThinkSet": True}], tmp_path)
    assert (got["opening_tag"], got["closing_tag"]) == ("<think>", "</think>")
    assert got["renders"] == ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n"]
    assert "FROM ./smol-Q4_K_M.gguf" in (repo / "Modelfile").read_text()


def test_publish_plan_verifies_and_needs_a_token(export_dir, tmp_path, monkeypatch):
    plan = upload_plan(export_dir)
    assert [p["file"] for p in plan] == ["smol-Q8_0.gguf", "smol-Q4_K_M.gguf", "manifest.json", "README.md",
                                         "Modelfile", "template", "params"]
    assert publish(export_dir, "me/smol-r1", dry_run=True) == plan
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    with pytest.raises(DistillError, match="no Hugging Face token"):
        publish(export_dir, "me/smol-r1")
    (export_dir / "smol-Q8_0.gguf").write_bytes(b"tampered")
    with pytest.raises(DistillError, match="does not match its manifest sha256"):
        upload_plan(export_dir)
    (export_dir / "manifest.json").write_text("[]")
    with pytest.raises(DistillError, match="is a JSON list"):
        upload_plan(export_dir)
