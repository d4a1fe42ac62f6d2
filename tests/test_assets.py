from transformers import AutoTokenizer

from distill.llamacpp import load_gguf

TEXTS = ["Ava has 23 coins and gets 145 more: ½ ² ³", "<think>\n37 + 14 = 51\n</think>\n\n\\boxed{51}",
         "naïve café 日本語 ١٢٣"]


def test_embedded_hf_folder_tokenizes_like_the_shipped_gguf(smol_hf_dir, smol_gguf):
    """The cached HF tokenizer splits digits one by one, as SmolLM2 was pretrained and as llama.cpp does."""
    tok = AutoTokenizer.from_pretrained(smol_hf_dir)
    llm = load_gguf(smol_gguf, n_ctx=128, vocab_only=True)
    for text in TEXTS:
        assert tok(text, add_special_tokens=False)["input_ids"] == llm.tokenize(text.encode(), add_bos=False,
                                                                                  special=True)
    assert len(tok("12345", add_special_tokens=False)["input_ids"]) == 5
