"""A GGUF's context, read from its metadata: the length the model was trained for (llama.cpp's
`n_ctx_train`) and the KV-cache bytes each token of context costs, so a runtime can size the
context a reasoning student needs (thinking runs to thousands of tokens) to the memory it has.

    facts = read_context(Path("export/smol/smol-Q4_K_M.gguf"))
    facts.train_ctx, facts.kv_bytes_per_token
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError

# R1's evaluation protocol generates up to 32,768 tokens; a context beyond it buys a laptop nothing.
THINKING_CTX = 32768


@dataclass(frozen=True)
class ContextFacts:
    train_ctx: int  # `<arch>.context_length`
    kv_bytes_per_token: int  # K and V of every layer, f16 (llama.cpp's default cache type)
    model_bytes: int  # the file, which llama.cpp maps into memory

    @property
    def thinking_ctx(self) -> int:
        """The context to run a reasoning student with: its training context, at most 32k."""
        return min(self.train_ctx, THINKING_CTX)


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    value = field.contents()
    # Per-layer arrays (head_count_kv of some architectures): the largest layer sizes the cache.
    return max(value) if isinstance(value, list) else value


def read_context(path: Path) -> ContextFacts:
    from gguf import GGUFReader

    path = Path(path)
    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as e:
        raise DistillError(f"{path} is not a readable GGUF file ({e}); export it again or re-download it") from None
    arch = _field(reader, "general.architecture")
    train_ctx = _field(reader, f"{arch}.context_length")
    layers = _field(reader, f"{arch}.block_count")
    heads = _field(reader, f"{arch}.attention.head_count")
    if not (arch and train_ctx and layers and heads):
        raise DistillError(f"{path} lacks the metadata llama.cpp needs (architecture, context length, layers); "
                           "export it again with `distill export`")
    kv_heads = _field(reader, f"{arch}.attention.head_count_kv", heads)
    head_dim = _field(reader, f"{arch}.embedding_length") // heads
    k_dim = _field(reader, f"{arch}.attention.key_length", head_dim)
    v_dim = _field(reader, f"{arch}.attention.value_length", head_dim)
    return ContextFacts(int(train_ctx), int(layers * kv_heads * (k_dim + v_dim) * 2), path.stat().st_size)
