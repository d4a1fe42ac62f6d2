"""A trace's length as training will see it: the student's tokens of the prompt and the trace, plus
the chat template's markers. The teacher's own count is the wrong yardstick for `train.max_length`:
R1's tokenizer is not Qwen's or Llama's, and the count leaves the prompt out.

    check_tokenizer(cfg.tokenizer)               # once, before the workers start: a clear error
    student_tokens(trace, cfg.tokenizer)         # > cfg.max_length -> `too_long`
"""

from __future__ import annotations

from functools import lru_cache

from distill.errors import DistillError
from distill.r1 import normalise_completion
from distill.records import Trace
from distill.sample.prompts import user_prompt

# ChatML wraps a user and an assistant turn in 10 tokens (<|im_start|>user\n ... <|im_end|>\n
# <|im_start|>assistant\n ... <|im_end|>), Llama-3 in 12 with its BOS; 16 bounds both
# (tests/filter/test_length.py measures the real templates against this).
TEMPLATE_TOKENS = 16


@lru_cache(maxsize=4)
def _tokenizer(name: str):
    from transformers import AutoTokenizer

    from distill.assets import hf_folder

    return AutoTokenizer.from_pretrained(hf_folder(name))


def check_tokenizer(name: str | None) -> None:
    if not name:
        raise DistillError("filter.max_length counts student tokens: set filter.tokenizer (or use a recipe, "
                           "whose student it defaults to)")
    try:
        _tokenizer(name)
    except Exception as e:  # noqa: BLE001 - hub unreachable, gated, no such folder, not a tokenizer
        raise DistillError(f"filter.max_length counts student tokens with {name!r}, which cannot be loaded "
                           f"({str(e)[:200]}); set filter.tokenizer to a local folder holding the "
                           "student's tokenizer") from None


def student_tokens(trace: Trace, tokenizer: str) -> int:
    tok = _tokenizer(tokenizer)
    text = normalise_completion(trace.completion, trace.reasoning_content)

    def count(s: str) -> int:
        return len(tok(s, add_special_tokens=False)["input_ids"])

    return count(user_prompt(trace)) + count(text) + TEMPLATE_TOKENS
