import json

import pytest

from distill.errors import DistillError
from distill.export import gguf as export
from distill.llamacpp import load_gguf, render_prompt
from distill.records import Problem, write_jsonl


def _traces(path, n=4):
    rows = [{"problem_id": f"p{i}", "sample_index": 0, "problem": f"What is {i} + 2?", "answer": str(i + 2),
             "domain": "math", "teacher": "t", "completion": f"<think>\n{i} + 2 = {i + 2}.\n</think>\n\n\\boxed{{{i + 2}}}",
             "finish_reason": "stop", "verdict": {"accepted": True, "reasons": []}} for i in range(n)]
    write_jsonl(path, rows)
    return path


@pytest.fixture(scope="module")
def exported(tiny_llama_dir, tmp_path_factory):
    from distill.recipe import EvalCfg

    root = tmp_path_factory.mktemp("export")
    out = root / "tiny"
    problems = [Problem(id="e1", problem="What is 1 + 1?", answer="2", domain="math", split="eval")]
    manifest = export.run(tiny_llama_dir, out, "tiny", ["Q8_0", "Q4_K_M"], base_model="tiny-llama",
                          recipe_name="t", recipe_sha256="ab" * 32, datasets=["bundled"],
                          traces=_traces(root / "accepted.jsonl"), n_traces=3, eval_problems=problems,
                          eval_cfg=EvalCfg(problems="x", max_tokens=8, temperature=0.0))
    return out, manifest


def test_export_writes_ladder_manifest_and_card(exported):
    out, manifest = exported
    assert [f["quant"] for f in manifest["files"]] == ["F16", "Q8_0", "Q4_K_M"]
    assert [f["file"] for f in manifest["files"]] == ["tiny-F16.gguf", "tiny-Q8_0.gguf", "tiny-Q4_K_M.gguf"]
    for f in manifest["files"]:
        assert f["sha256"] == export.sha256_file(out / f["file"]) and f["bytes"] == (out / f["file"]).stat().st_size
        assert f["loads"] is True and f["tokens_per_s"] > 0
        assert f["pass@1"] is not None and f["eval_problems"] == 1
    sizes = [f["bytes"] for f in manifest["files"]]
    assert sizes[0] > sizes[1] > sizes[2]
    assert [f["bits_per_weight"] for f in manifest["files"]][:2] == [16.0, 8.5]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["perplexity_texts"] == 3 and "accepted traces" in manifest["perplexity_source"]
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./tiny-Q4_K_M.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "PARAMETER temperature 0.6" in modelfile
    # Ollama's files (their rendering is checked with Go in test_ollama.py): the template with thinking.
    template = modelfile.split('TEMPLATE """', 1)[1].split('"""')[0]
    assert template == (out / "template").read_text() and "{{ .Thinking }}" in template
    assert json.loads((out / "params").read_text())["stop"][0] == "<|im_end|>"
    card = (out / "README.md").read_text()
    assert "| `tiny-Q8_0.gguf` | Q8_0 |" in card and "identical" in card and "ollama create tiny" in card
    assert card.startswith("---\nlicense: apache-2.0\nbase_model: tiny-llama")
    assert not list(out.glob("*.part"))


def test_every_file_is_proven_against_hf(exported):
    _, manifest = exported
    f16, q8, q4 = manifest["files"]
    for f in manifest["files"]:
        tp = f["tokenizer_parity"]
        assert tp["identical"], tp["mismatches"]
        assert tp["texts"] >= 10 and tp["tokens"] > 100
    lp = f16["logit_parity"]
    assert lp["top1_agreement"] >= 0.95 and lp["max_abs_diff"] < 0.05 and lp["positions"] > 20
    assert f16["perplexity_ratio_to_f16"] == 1.0 and f16["tokens"] > 50
    assert abs(q8["perplexity_ratio_to_f16"] - 1) < 0.01
    assert q4["perplexity"] is not None


def test_fallback_tensors_are_reported(exported):
    """hidden_size 64 is not a multiple of the k-quants' 256: llama.cpp falls back, and we say so."""
    _, manifest = exported
    q8, q4 = manifest["files"][1:]
    assert q8["fallback_tensors"] == []
    fb = q4["fallback_tensors"]
    assert fb and all(f["ncols"] % 256 and f["wanted"] in ("q4_K", "q5_K", "q6_K") and f["got"] for f in fb)
    # every 2-D weight fell back: the file holds no k-quant at all, and the census agrees with the log
    assert not {"Q4_K", "Q5_K", "Q6_K"} & set(q4["tensor_types"])
    quantized = sum(n for t, n in q4["tensor_types"].items() if t != "F32")
    logged = {f["tensor"] for f in fb}
    # token_embd (tied to the output) is given Q8_0 by llama.cpp's output rule without a log line
    assert quantized == len(logged) + ("token_embd.weight" not in logged)


def test_gguf_carries_template_stop_token_and_metadata(exported):
    out, _ = exported
    llm = load_gguf(out / "tiny-Q8_0.gguf", n_ctx=256)
    meta = llm.metadata
    assert "{%- generation" not in meta["tokenizer.chat_template"] and "endgeneration" not in meta["tokenizer.chat_template"]
    assert llm.detokenize([llm.token_eos()], special=True) == b"<|im_end|>"
    assert meta["general.license"] == "apache-2.0" and "ababab" in meta["general.description"]
    assert meta["general.base_model.0.name"] == "tiny-llama" and meta["general.dataset.0.name"] == "bundled"
    prompt = render_prompt(llm, [{"role": "user", "content": "hi"}])
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n"


def test_not_a_student_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DistillError, match="not a trained student folder"):
        export.run(tmp_path, tmp_path / "o", "x", [], "b", "r", "0" * 64)


def test_unknown_pre_tokenizer_error_says_what_to_do(tiny_llama_dir, tmp_path):
    """A tokenizer whose split regex llama.cpp does not implement cannot be exported faithfully."""
    import shutil

    src = tmp_path / "odd"
    shutil.copytree(tiny_llama_dir, src)
    tj = json.loads((src / "tokenizer.json").read_text())
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"\d|\s+|[^\s\d]+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    (src / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(DistillError, match="does not know this tokenizer's pre-tokenizer") as e:
        export.convert(src, tmp_path / "x.gguf", {"general.name": "x"})
    assert "Train the student with its base model's own tokenizer" in str(e.value)
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "x.gguf.part").exists()
