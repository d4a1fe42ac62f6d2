"""Shared fixtures: tiny real models built from configs with real tokenizers, the embedded
SmolLM2 GGUF, and a real llama.cpp server on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = "embedded:smollm2-135m-instruct"


@pytest.fixture(autouse=True)
def _in_tmp_cwd(tmp_path, monkeypatch):
    """Each test runs in its own folder so data/runs and export/ never touch the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def smol_hf_dir() -> Path:
    from distill.assets import hf_folder

    return Path(hf_folder(EMBEDDED))


@pytest.fixture(scope="session")
def smol_gguf() -> Path:
    from distill.assets import embedded_gguf

    return embedded_gguf(EMBEDDED)


def _tiny(dest: Path, arch: str, tokenizer_dir: Path, style: str, seed: int = 0) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.train.templates import apply_to

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    apply_to(tok, style, prefill_think=True)
    config = AutoConfig.for_model(
        arch, vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smol_hf_dir) -> Path:
    """A 2-layer Llama with SmolLM2's real tokenizer (ChatML, a pre-tokenizer llama.cpp knows)."""
    return _tiny(tmp_path_factory.mktemp("tiny-llama"), "llama", smol_hf_dir, "chatml")


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory, smol_hf_dir) -> Path:
    """A 2-layer Qwen2 (the Qwen2.5 students' architecture) with SmolLM2's real ChatML tokenizer."""
    return _tiny(tmp_path_factory.mktemp("tiny-qwen2"), "qwen2", smol_hf_dir, "chatml")


@pytest.fixture(scope="session")
def llama_server(smol_gguf, tmp_path_factory):
    """llama.cpp's own OpenAI-compatible server (llama-server) on 127.0.0.1 serving the embedded SmolLM2."""
    from distill.llamacpp import LlamaServer

    log = tmp_path_factory.mktemp("server") / "server.log"
    with LlamaServer(smol_gguf, alias=EMBEDDED, parallel=2, ctx=1024, threads=os.cpu_count(), log_path=log) as server:
        yield server


@pytest.fixture(scope="session")
def bigram_gguf(tmp_path_factory) -> Path:
    """A hand-wired student whose greedy reply is known token by token (tests/bigram.py)."""
    from bigram import bigram_student, to_gguf

    root = tmp_path_factory.mktemp("bigram")
    return to_gguf(bigram_student(root / "hf"), root / "bigram.gguf")


@pytest.fixture(scope="session")
def long_thinker_gguf(tmp_path_factory) -> Path:
    """Thinks 2,100 tokens before it answers; its training context (GGUF metadata) is 8,192."""
    from bigram import bigram_student, long_thinking_ids, to_gguf

    root = tmp_path_factory.mktemp("long-thinker")
    return to_gguf(bigram_student(root / "hf", long_thinking_ids(2100), max_positions=8192), root / "long.gguf")


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


MICRO_RECIPE = """
name: micro
student:
  model: {student}
teacher:
  backend: openai
  model: stand-in-r1
  base_urls: [{url}]
problems:
  path: {problems}
  split: train
  limit: 4
sampling:
  n: 2
  max_tokens: 64
  max_concurrent: 2
  timeout_s: 30
  max_retries: 2
train:
  mode: full
  learning_rate: 1.0e-3
  max_steps: 3
  per_device_train_batch_size: 4
  max_length: 256
  logging_steps: 1
eval:
  problems: {problems}
  split: eval
  limit: 3
  max_tokens: 8
  temperature: 0.0
  batch_size: 3
  think_budgets: [2]
  budget_limit: 2
  base_limit: 2
  answer_tokens: 4
export:
  quants: [Q8_0]
"""
