"""How `distill chat` and `distill serve` size the context: the GGUF's training context, capped by
free RAM (beside the mapped model) and at R1's 32k generation length, and said in one sentence."""

from distill.export.context import ContextFacts
from distill.laptop.session import GiB, choose_ctx

LLAMA8B = ContextFacts(train_ctx=131072, kv_bytes_per_token=131072, model_bytes=int(4.9e9))  # 32 layers, 8 KV heads
SMALL = ContextFacts(train_ctx=8192, kv_bytes_per_token=12288, model_bytes=int(1e8))


def test_default_is_the_training_context_capped_at_32k():
    assert choose_ctx(SMALL, None, 16 * GiB) == (
        8192, "context 8,192 tokens (the model's training context; KV cache 96 MiB, 16.0 GiB free)")
    ctx, said = choose_ctx(LLAMA8B, None, 64 * GiB)
    assert ctx == 32768 and "R1's generation length; the training context is 131,072" in said


def test_free_ram_caps_the_context():
    ctx, said = choose_ctx(LLAMA8B, None, 8 * GiB)
    room = int((8 * GiB - LLAMA8B.model_bytes) * 0.8) // LLAMA8B.kv_bytes_per_token
    assert ctx == room // 256 * 256 and ctx < 32768 and "capped by free RAM" in said
    assert choose_ctx(LLAMA8B, None, 4 * GiB)[0] == 512  # below the model's own size: the floor, said as is
    assert choose_ctx(LLAMA8B, None, 16 * GiB)[0] == 32768 > choose_ctx(LLAMA8B, None, 16 * GiB, slots=4)[0]


def test_a_requested_context_is_kept_with_its_warnings():
    ctx, said = choose_ctx(SMALL, 16384, 16 * GiB)
    assert ctx == 16384 and "beyond the model's training context of 8,192" in said
    ctx, said = choose_ctx(LLAMA8B, 65536, 8 * GiB)
    assert ctx == 65536 and "may not fit in the 8.0 GiB free" in said
    assert choose_ctx(LLAMA8B, None, None)[0] == 32768  # memory unknown: no cap from it
