"""The export of a tiny trained student, proven with llama.cpp's own tools: tokenizer parity, F16
logits against HF, KL divergence and top-1 agreement of each quant against F16 (above F16's own
noise floor), an importance matrix used for the K-quants, pass@1 through llama-server; and the
refusals: a corrupted file, a tokenizer that differs, KL divergence past the recipe's limit."""

import json
import shutil

import pytest
from tiny_students import fit

from distill.errors import DistillError
from distill.export import gguf as export
from distill.export import prove
from distill.llamacpp import load_gguf, render_prompt
from distill.problems.bundled import generate_bundled, select
from distill.recipe import EvalCfg, ExportCfg
from distill.records import sha256_file

BUNDLED = generate_bundled(per_kind=12)


def worked(problems) -> list[tuple[str, str]]:
    """R1-form completions for problems (what a student that learned the format writes)."""
    return [(p.problem, f"<think>\n{p.problem} Working it out step by step gives {p.answer}.\n</think>\n\n"
                        f"The answer is \\boxed{{{p.answer}}}.") for p in problems]


@pytest.fixture(scope="module")
def student(tmp_path_factory, smol_hf_dir):
    """A tiny Llama (SmolLM2's tokenizer, width 64: no multiple of the K-quants' 256) trained a little on
    R1-form arithmetic, so its predictions are peaked like a real student's."""
    root = tmp_path_factory.mktemp("student")
    return fit(root / "hf", smol_hf_dir, "chatml", worked(select(BUNDLED, "train", 16)), steps=120)


@pytest.fixture(scope="module")
def exported(student, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny"
    cfg = ExportCfg(quants=["Q8_0", "Q4_K_M", "Q4_0"], kld_ctx=128, kld_chunks=8, imatrix_chunks=4,
                    max_kld={"Q8_0": 0.05}, eval_n=1)
    manifest = export.run(student, out, "tiny", cfg, base_model="tiny-llama", recipe_name="t",
                          recipe_sha256="ab" * 32, datasets=["bundled"], heldout=worked(select(BUNDLED, "eval", 24)),
                          calibration=worked(select(BUNDLED, "train", 40)[16:]),
                          eval_problems=select(BUNDLED, "eval", 2),
                          eval_cfg=EvalCfg(problems="x", n=3, max_tokens=8, temperature=0.0, batch_size=2), max_length=512)
    return out, manifest


def test_export_writes_ladder_manifest_and_card(exported):
    out, manifest = exported
    assert [f["file"] for f in manifest["files"]] == ["tiny-F16.gguf", "tiny-Q8_0.gguf", "tiny-Q4_K_M.gguf",
                                                      "tiny-Q4_0.gguf"]
    for f in manifest["files"]:
        assert f["sha256"] == sha256_file(out / f["file"]) and f["bytes"] == (out / f["file"]).stat().st_size
        assert f["tokens_per_s"] > 0 and f["eval_problems"] == 2 and f["truncation_rate"] in (0.0, 0.5, 1.0)
        assert f["eval_samples"] == 2  # export.eval_n 1, not the eval section's n of 3
    sizes = [f["bytes"] for f in manifest["files"]]
    assert sizes[0] > sizes[1] > sizes[3]
    assert [f["bits_per_weight"] for f in manifest["files"]][:2] == [16.0, 8.5]
    f16 = manifest["files"][0]
    for f in manifest["files"][1:]:  # each quant's pass@1 minus F16's, paired on the same problems
        assert f["pass@1_vs_f16"] == pytest.approx(f["pass@1"] - f16["pass@1"], abs=1e-3)
    assert "pass@1_vs_f16" not in f16
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["failures"] == [] and manifest["forced"] is False
    assert not (out / "manifest.rejected.json").exists() and not list(out.glob(".work-*"))
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./tiny-Q4_K_M.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    # Ollama's files (their rendering is checked with Go in test_ollama.py): the template with thinking.
    template = modelfile.split('TEMPLATE """', 1)[1].split('"""')[0]
    assert template == (out / "template").read_text() and "{{ .Thinking }}" in template
    assert json.loads((out / "params").read_text())["stop"][0] == "<|im_end|>"
    card = (out / "README.md").read_text()
    assert "| `tiny-Q8_0.gguf` | Q8_0 |" in card and "KLD vs F16" in card and "ollama create tiny" in card
    q8 = manifest["files"][1]
    assert f"| {q8['pass@1_vs_f16']:+.3f} ± {q8['pass@1_vs_f16_se']:.3f} |" in card
    assert f"{manifest['imatrix']['comparison']['without']:.4f} without it" in card
    assert card.startswith("---\nlicense: apache-2.0\nbase_model: tiny-llama")


def test_f16_is_the_hf_model_on_held_out_conversations(exported):
    _, manifest = exported
    for f in manifest["files"]:
        tp = f["tokenizer_parity"]
        assert tp["identical"], tp["mismatches"]
        assert tp["texts"] >= 8 and tp["tokens"] > 100
        # SmolLM2's BOS is <|im_start|>, which the template writes once; llama.cpp adds none (it counted our ids).
        assert f["prompt_bos"] == 1 and f["prompt_tokens"] == f["prompt_ids"]
    lp = manifest["files"][0]["logit_parity"]
    assert lp["texts"] == 8 and lp["positions"] > 300  # whole conversations, not three short prompts
    assert lp["top1_agreement"] >= 0.98 and lp["kld"] < 1e-3


def test_kl_divergence_per_quant_above_f16_noise_floor(exported):
    _, manifest = exported
    f16, q8, q4km, q40 = manifest["files"]
    kld = manifest["kld"]
    assert kld["ctx"] == 128 and kld["chunks"] == 8 and kld["scored_tokens"] == 8 * 63
    assert "student's completions" in kld["source"]
    floor = f16["kld"]
    assert floor == kld["noise_floor"] and floor < 1e-4 and f16["top1_agreement"] > 0.999
    # Each quant measurably differs from F16, and fewer bits differ more.
    assert q8["kld"] > 3 * floor and q8["kld"] < q40["kld"]
    assert q4km["kld"] < q40["kld"] and q40["top1_agreement"] < 1.0
    for f in (q8, q4km, q40):
        assert f["kld_se"] > 0 and f["perplexity"] > 1 and f["ln_ppl_ratio"] != 0
    assert abs(f16["ln_ppl_ratio"]) < 1e-4  # F16 against its own log-probabilities


def test_importance_matrix_is_used_for_k_quants_and_compared(exported):
    out, manifest = exported
    im = manifest["imatrix"]
    assert (out / im["file"]).exists() and im["chunks"] >= 1 and "rejected" in im["source"]
    assert [f["imatrix"] for f in manifest["files"]] == [False, False, True, False]
    comparison = im["comparison"]
    q4km = manifest["files"][2]
    assert comparison["quant"] == "Q4_K_M" and comparison["with"] == q4km["kld"]
    assert comparison["without"] > 0 and comparison["without"] != comparison["with"]


def test_fallback_tensors_are_reported(exported):
    """Width 64 is not a multiple of the k-quants' 256: llama.cpp falls back, and we say so."""
    _, manifest = exported
    q8, q4 = manifest["files"][1:3]
    assert q8["fallback_tensors"] == []
    fb = q4["fallback_tensors"]
    assert fb and all(f["ncols"] % 256 and f["wanted"] in ("q4_K", "q5_K", "q6_K") and f["got"] for f in fb)
    assert not {"Q4_K", "Q5_K", "Q6_K"} & set(q4["tensor_types"])


def test_gguf_carries_template_stop_token_and_metadata(exported):
    out, _ = exported
    llm = load_gguf(out / "tiny-Q8_0.gguf", n_ctx=256)
    meta = llm.metadata
    assert "{%- generation" not in meta["tokenizer.chat_template"]
    assert llm.detokenize([llm.token_eos()], special=True) == b"<|im_end|>"
    assert meta["general.license"] == "apache-2.0" and "ababab" in meta["general.description"]
    assert meta["general.base_model.0.name"] == "tiny-llama" and meta["general.dataset.0.name"] == "bundled"
    prompt = render_prompt(llm, [{"role": "user", "content": "hi"}])
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n"
    llm.close()


def test_corrupted_gguf_is_refused(exported, tmp_path, student):
    out, manifest = exported
    truncated = tmp_path / "truncated.gguf"
    data = (out / "tiny-Q8_0.gguf").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DistillError, match="corrupted|not a readable GGUF"):
        prove.prove_file(truncated, "Q8_0", None)
    # Same size, one weight tensor damaged: it loads, but its logits no longer match the HF model, whether
    # the values are moved (rows rotated) or garbage (NaN, 0xFFFF in F16: the checks must not let NaN pass).
    from gguf import GGUFReader

    from distill.export import parity

    model, tok = parity.load_hf(student)
    texts = [tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], tokenize=False)] * 3
    f16 = out / "tiny-F16.gguf"
    t = next(t for t in GGUFReader(str(f16)).tensors if t.name == "blk.0.ffn_down.weight")
    start, n = int(t.data_offset), int(t.n_bytes)
    data = f16.read_bytes()
    region = data[start:start + n]
    for name, damaged in [("moved", region[n // 2:] + region[:n // 2]), ("garbage", b"\xff" * n)]:
        broken = tmp_path / f"{name}-F16.gguf"
        broken.write_bytes(data[:start] + damaged + data[start + n:])
        bad = prove.f16_logits(broken, model, tok, texts, n_ctx=256)
        failures = prove.judge(manifest["files"][:1], bad, ExportCfg())
        assert failures and all(f.startswith("F16 logits") for f in failures), (name, bad)
        if name == "moved":
            assert bad["kld"] > 100 * manifest["files"][0]["logit_parity"]["kld"]
    assert bad["kld"] != bad["kld"]  # NaN logits, and NaN failed the checks


def test_a_different_tokenizer_fails_the_export(exported):
    from transformers import AutoTokenizer

    from distill.assets import llama3_tokenizer_dir

    out, manifest = exported
    other = AutoTokenizer.from_pretrained(llama3_tokenizer_dir())
    entry = prove.prove_file(out / "tiny-Q8_0.gguf", "Q8_0", other)
    assert not entry["tokenizer_parity"]["identical"]
    failures = prove.judge([entry], manifest["files"][0]["logit_parity"], ExportCfg())
    assert len(failures) == 1 and "tokenization differs" in failures[0]


def test_failed_checks_refuse_the_export_unless_forced(exported, tmp_path):
    exported_dir, manifest = exported
    out = tmp_path / "judged"
    out.mkdir()
    shutil.copy(exported_dir / "tiny-Q4_K_M.gguf", out)  # the Modelfile's file (Ollama's num_ctx is read from it)
    failing = {**manifest, "failures": ["tiny-Q4_0.gguf: KL divergence to F16 0.2 > export.max_kld.Q4_0 0.1"]}
    with pytest.raises(DistillError, match="--force") as e:
        export._finish(out, dict(failing), force=False)
    assert "max_kld.Q4_0" in str(e.value)
    assert (out / "manifest.rejected.json").exists() and not (out / "manifest.json").exists()
    kept = export._finish(out, dict(failing), force=True)
    assert kept["forced"] is True and json.loads((out / "manifest.json").read_text())["failures"]
    assert not (out / "manifest.rejected.json").exists()


def test_kld_threshold_in_the_recipe_judges_quants(exported):
    _, manifest = exported
    q40 = manifest["files"][3]
    strict = ExportCfg(max_kld={"Q4_0": q40["kld"] / 2})
    assert prove.judge(manifest["files"], manifest["files"][0]["logit_parity"], ExportCfg()) == []
    (failure,) = prove.judge(manifest["files"], manifest["files"][0]["logit_parity"], strict)
    assert failure.startswith("tiny-Q4_0.gguf: KL divergence") and "export.max_kld.Q4_0" in failure
    with pytest.raises(ValueError, match="keys are quants"):
        ExportCfg(max_kld={"F16": 0.1})


def test_not_a_student_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DistillError, match="not a trained student folder"):
        export.run(tmp_path, tmp_path / "o", "x", ExportCfg(), "b", "r", "0" * 64)


def test_unknown_pre_tokenizer_error_says_what_to_do(tiny_llama_dir, tmp_path):
    """A tokenizer whose split regex llama.cpp does not implement cannot be exported faithfully."""
    from distill.hf_to_gguf import convert

    src = tmp_path / "odd"
    shutil.copytree(tiny_llama_dir, src)
    tj = json.loads((src / "tokenizer.json").read_text())
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"\d|\s+|[^\s\d]+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    (src / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(DistillError, match="does not know this tokenizer's pre-tokenizer") as e:
        convert(src, tmp_path / "x.gguf", {"general.name": "x"})
    assert "Train the student with its base model's own tokenizer" in str(e.value)
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "x.gguf.part").exists()
