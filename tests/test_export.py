import json

import pytest

from distill import export
from distill.chat import reply
from distill.errors import DistillError
from distill.llama import load_gguf, render_prompt


@pytest.fixture(scope="module")
def exported(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny"
    manifest = export.run(tiny_llama_dir, out, "tiny", ["Q8_0", "Q4_K_M"], base_model="tiny-llama",
                          recipe_name="t", recipe_sha256="ab" * 32, datasets=["bundled"])
    return out, manifest


def test_export_writes_ladder_manifest_and_card(exported):
    out, manifest = exported
    assert [f["quant"] for f in manifest["files"]] == ["F16", "Q8_0", "Q4_K_M"]
    assert [f["file"] for f in manifest["files"]] == ["tiny-F16.gguf", "tiny-Q8_0.gguf", "tiny-Q4_K_M.gguf"]
    for f in manifest["files"]:
        assert f["sha256"] == export.sha256_file(out / f["file"]) and f["bytes"] == (out / f["file"]).stat().st_size
        assert f["loads"] is True
    sizes = [f["bytes"] for f in manifest["files"]]
    assert sizes[0] > sizes[1] > sizes[2]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert "FROM ./tiny-Q4_K_M.gguf" in (out / "Modelfile").read_text()
    assert 'stop "<|im_end|>"' in (out / "Modelfile").read_text()
    assert "tiny-Q8_0.gguf" in (out / "README.md").read_text()
    assert not list(out.glob("*.part"))


def test_gguf_carries_template_stop_token_and_metadata(exported):
    out, _ = exported
    llm = load_gguf(out / "tiny-Q8_0.gguf", n_ctx=256)
    meta = llm.metadata
    assert "{%- generation" not in meta["tokenizer.chat_template"] and "endgeneration" not in meta["tokenizer.chat_template"]
    assert llm.detokenize([llm.token_eos()], special=True) == b"<|im_end|>"
    assert meta["general.license"] == "apache-2.0" and "ababab" in meta["general.description"]
    prompt = render_prompt(llm, [{"role": "user", "content": "hi"}])
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n"


def test_think_budget_ends_thinking_at_n_tokens(exported):
    out, _ = exported
    llm = load_gguf(out / "tiny-F16.gguf", n_ctx=512)
    r = reply(llm, "What is 2 + 2?", think_budget=16, max_tokens=40, temperature=0.0)
    assert r.thinking_tokens <= 16
    assert r.budget_forced or r.thinking_tokens < 16


def test_conversion_error_is_clear(tmp_path):
    with pytest.raises(DistillError, match="not a trained student folder"):
        export.run(tmp_path, tmp_path / "o", "x", [], "b", "r", "0" * 64)
