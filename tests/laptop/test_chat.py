"""`distill chat` on real GGUFs run by llama.cpp: a random tiny student (it never closes its
thinking, so the budget must) and a hand-wired one whose greedy output is a fixed R1 reply
(its layers are zeroed, so each next token depends only on the current one: a bigram table
written into the LM head), which lets the tests see exactly where thinking closes."""

import pytest
from typer.testing import CliRunner

from distill.export import gguf as export
from distill.laptop.chat import reply
from distill.llamacpp import load_gguf

SCRIPT = "One two three\n</think>\n\nThe answer is \\boxed{4}.<|eot_id|>"
AFTER_WAIT = " four\n</think>\n\n"


def _bigram_student(dest):
    """Llama-3's tokenizer: its "\\n\\n" after </think> is one token, unlike the "\\n" after <think>."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.assets import llama3_tokenizer_dir
    from distill.train.templates import apply_to

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(llama3_tokenizer_dir())
    apply_to(tok, "llama3", prefill_think=True)
    config = AutoConfig.for_model(
        "llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    prompt = tok.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    chains = [tok.encode(prompt + SCRIPT, add_special_tokens=False)[len(tok.encode(prompt, add_special_tokens=False)) - 1:],
              tok.encode("\nWait" + AFTER_WAIT, add_special_tokens=False)[1:]]
    nxt = {}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            assert nxt.setdefault(a, b) == b, "the script needs one successor per token"
    with torch.no_grad():
        for name, p in model.model.layers.named_parameters():
            if "norm" not in name:
                p.zero_()  # attention and MLP add nothing: the hidden state is the token's embedding
        emb = model.model.embed_tokens.weight
        head = torch.zeros_like(model.lm_head.weight)
        for a, b in nxt.items():
            head[b] += 50 * emb[a] / emb[a].norm()
        model.lm_head.weight.copy_(head)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def ggufs(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    meta = {"general.name": "t"}
    export.convert(tiny_llama_dir, root / "random.gguf", meta)
    export.convert(_bigram_student(root / "bigram"), root / "bigram.gguf", meta)
    return root / "random.gguf", root / "bigram.gguf"


def test_think_budget_16_ends_thinking_at_16_tokens(ggufs):
    llm = load_gguf(ggufs[0], n_ctx=512)
    free = reply(llm, "What is 2 + 2?", max_tokens=40, temperature=0.0)
    assert free.thinking_tokens == 40 and not free.answer  # this student never closes its thinking
    r = reply(llm, "What is 2 + 2?", think_budget=16, max_tokens=40, temperature=0.0)
    assert r.thinking_tokens == 16 and r.budget_forced and r.answer_tokens > 0
    assert free.thinking.startswith(r.thinking)  # the same greedy thinking, cut at 16 tokens


def test_reply_follows_the_student_and_separates_thinking(ggufs):
    llm = load_gguf(ggufs[1], n_ctx=512)
    parts = []
    r = reply(llm, "q", max_tokens=64, temperature=0.0, on_text=lambda part, text: parts.append((part, text)))
    assert r.thinking == "One two three" and r.answer == "The answer is \\boxed{4}."
    assert not r.budget_forced and r.waits == 0
    assert "".join(t for p, t in parts if p == "answer").strip() == r.answer
    assert "</think>" not in "".join(t for _, t in parts)


def test_short_thinking_is_extended_with_wait(ggufs):
    """s1 budget forcing: thinking that closes before min_think tokens gets 'Wait' and goes on."""
    llm = load_gguf(ggufs[1], n_ctx=512)
    r = reply(llm, "q", max_tokens=64, temperature=0.0, min_think=50, max_waits=1)
    assert r.waits == 1 and r.thinking == "One two three\nWait four"
    assert r.answer == "The answer is \\boxed{4}."


def test_chat_cli_hides_thinking_and_reports_the_budget(ggufs):
    from distill.cli import app

    res = CliRunner().invoke(app, ["chat", str(ggufs[0]), "--hide-thinking", "--think-budget", "16",
                                   "--max-tokens", "24", "--temperature", "0", "-p", "What is 2 + 2?"])
    assert res.exit_code == 0, res.output
    assert "thought for 16 tokens" in res.output
    assert "thinking closed at the budget of 16 tokens" in res.output
    shown = CliRunner().invoke(app, ["chat", str(ggufs[1]), "--show-thinking", "--temperature", "0", "-p", "q"])
    assert shown.exit_code == 0 and "One two three" in shown.output and "\\boxed{4}" in shown.output
    missing = CliRunner().invoke(app, ["chat", "nope.gguf", "-p", "q"])
    assert missing.exit_code != 0
