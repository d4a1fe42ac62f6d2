"""Export of the other student shapes: (slow) a tiny Llama-3 student (the bundled Llama-3 tokenizer,
whose template writes BOS itself), a Qwen2 student's PEFT LoRA adapter merged on export, and (slow)
the embedded SmolLM2, whose quants must order by KL divergence."""

import json
from pathlib import Path

import pytest
from test_export import BUNDLED, worked
from tiny_students import fit

from distill.export import gguf as export
from distill.problems.bundled import select
from distill.recipe import EvalCfg, ExportCfg

HELDOUT = worked(select(BUNDLED, "eval", 24))


@pytest.mark.slow
def test_llama3_student_whole_export_with_parity_and_one_bos(tmp_path):
    """Minutes on 2 cores: every step of training and every llama.cpp tool pays for a 128k vocabulary."""
    from distill.assets import llama3_tokenizer_dir
    from distill.llamacpp import load_gguf

    student = fit(tmp_path / "hf", llama3_tokenizer_dir(), "llama3", worked(select(BUNDLED, "train", 8)), steps=60)
    cfg = ExportCfg(quants=["Q8_0", "Q4_K_M"], kld_ctx=128, kld_chunks=4, imatrix_chunks=2)
    manifest = export.run(student, tmp_path / "out", "l3", cfg, base_model="tiny-llama3", recipe_name="t",
                          recipe_sha256="e" * 64, stop_token="<|eot_id|>", heldout=HELDOUT,
                          calibration=worked(select(BUNDLED, "train", 40)[8:]),
                          eval_problems=select(BUNDLED, "eval", 2),
                          eval_cfg=EvalCfg(problems="x", max_tokens=6, temperature=0.0, batch_size=2))
    assert manifest["failures"] == [] and [f["quant"] for f in manifest["files"]] == ["F16", "Q8_0", "Q4_K_M"]
    for f in manifest["files"]:
        assert f["tokenizer_parity"]["identical"], f["tokenizer_parity"]["mismatches"]
        # The template writes <|begin_of_text|>; llama.cpp counted exactly the ids sent: one BOS, not two.
        assert f["prompt_bos"] == 1 and f["prompt_tokens"] == f["prompt_ids"]
        assert f["eval_problems"] == 2
    lp = manifest["files"][0]["logit_parity"]
    assert lp["top1_agreement"] >= 0.98 and lp["kld"] < 1e-3 and lp["positions"] > 300
    assert manifest["imatrix"]["comparison"]["without"] > 0
    llm = load_gguf(tmp_path / "out" / "l3-Q8_0.gguf", n_ctx=128, vocab_only=True)
    assert llm.metadata["tokenizer.ggml.pre"] == "llama-bpe"
    assert llm.detokenize([llm.token_eos()], special=True) == b"<|eot_id|>"
    llm.close()
    assert 'PARAMETER stop "<|eot_id|>"' in (tmp_path / "out" / "Modelfile").read_text()


@pytest.fixture(scope="module")
def qwen2_adapter(tiny_qwen2_dir, tmp_path_factory):
    """A LoRA adapter (non-zero B, so merging changes the weights) on a tiny Qwen2 base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("qwen2")
    base_dir = tiny_qwen2_dir
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    adapter = root / "adapter"
    peft_model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(adapter)
    return base_dir, adapter


def test_qwen2_adapter_is_merged_converted_and_proven(qwen2_adapter, tmp_path):
    from distill.export.parity import gguf_logits, load_hf
    from distill.llamacpp import load_gguf

    base_dir, adapter = qwen2_adapter
    assert not (adapter / "config.json").exists() and (adapter / "adapter_config.json").exists()
    out = tmp_path / "export"
    manifest = export.run(adapter, out, "q", ExportCfg(quants=[], kld_ctx=128, kld_chunks=4), base_model="tiny-qwen2",
                          recipe_name="t", recipe_sha256="c" * 64, heldout=HELDOUT)
    (f16,) = manifest["files"]
    assert manifest["merged_adapter"] is True and manifest["imatrix"] is None
    assert f16["tokenizer_parity"]["identical"], f16["tokenizer_parity"]["mismatches"]
    assert f16["logit_parity"]["top1_agreement"] >= 0.98 and f16["logit_parity"]["kld"] < 1e-3
    llm = load_gguf(out / "q-F16.gguf", n_ctx=256, logits_all=True)
    assert llm.metadata["general.architecture"] == "qwen2"
    assert llm.metadata["tokenizer.ggml.pre"] == "qwen2"  # named from the regex; the hash is unknown
    # The GGUF holds the merged weights, not the base: its logits move away from the base model's.
    model, tok = load_hf(base_dir)
    import torch

    ids = tok.encode("What is 12 + 30?", add_special_tokens=False)
    with torch.inference_mode():
        base_logits = model(torch.tensor([ids])).logits[0].numpy()
    assert abs(gguf_logits(llm, ids) - base_logits).max() > 10 * f16["logit_parity"]["max_abs_diff"]
    llm.close()
    assert json.loads((out / "manifest.json").read_text())["files"][0]["sha256"] == f16["sha256"]


@pytest.mark.slow
def test_smollm2_quants_order_by_kl_divergence(smol_hf_dir, tmp_path):
    """The real 135M student: Q8_0 < Q4_K_M < Q4_0 in KL divergence to F16, on its own completions of
    eval-split problems (the bench's setting, smaller); the importance matrix changes Q4_K_M."""
    bundled = Path(__file__).resolve().parents[2] / "data/problems/arithmetic.jsonl"
    from distill.problems.bundled import load_split

    cfg = ExportCfg(quants=["Q8_0", "Q4_K_M", "Q4_0"], kld_ctx=256, kld_chunks=8, imatrix_chunks=8)
    manifest = export.run(Path(smol_hf_dir), tmp_path / "smol", "smol", cfg, base_model="HuggingFaceTB/SmolLM2-135M",
                          recipe_name="t", recipe_sha256="d" * 64, heldout_problems=load_split(bundled, "eval", 24),
                          calibration_problems=load_split(bundled, "train", 24),
                          eval_cfg=EvalCfg(problems="x", max_tokens=128, temperature=0.0, batch_size=8))
    f16, q8, q4km, q40 = manifest["files"]
    assert all(f["tokenizer_parity"]["identical"] for f in manifest["files"]) and manifest["failures"] == []
    assert f16["kld"] < q8["kld"] < q4km["kld"] < q40["kld"]
    assert q4km["fallback_tensors"]  # 576 columns are not a multiple of 256
    cmp = manifest["imatrix"]["comparison"]
    assert cmp["with"] != cmp["without"]
