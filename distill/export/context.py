"""A GGUF's context, read from its metadata: the length the model was trained for (llama.cpp's
`n_ctx_train`) and the KV-cache bytes each token of context costs, so a runtime can size the
context a reasoning student needs (thinking runs to thousands of tokens) to the memory it has.

    facts = read_context(Path("export/smol/smol-Q4_K_M.gguf"))
    facts.train_ctx, facts.kv_bytes_per_token, facts.thinking_ctx
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


# struct formats of GGUF's scalar value types (gguf-py's GGUFValueType numbering).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def metadata(path: Path) -> dict:
    """A GGUF's key/value header: scalars and strings as values, numeric arrays as lists, string
    arrays (the vocabulary) skipped as None. gguf-py's GGUFReader builds a numpy view of every
    vocabulary entry first: 6.9 s against 0.03 s for this walk on SmolLM2's 49k vocab (bench/laptop.py,
    a loaded machine), before every `distill chat`."""
    import mmap
    import struct

    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        if data[:4] != b"GGUF" or struct.unpack_from("<I", data, 4)[0] < 2:
            raise ValueError("no GGUF v2+ header")
        n_kv = struct.unpack_from("<Q", data, 16)[0]
        pos, out = 24, {}

        def string(at: int) -> tuple[str, int]:
            n = struct.unpack_from("<Q", data, at)[0]
            return data[at + 8:at + 8 + n].decode("utf-8", "replace"), at + 8 + n

        for _ in range(n_kv):
            key, pos = string(pos)
            kind = struct.unpack_from("<I", data, pos)[0]
            pos += 4
            if kind == _STRING:
                out[key], pos = string(pos)
            elif kind == _ARRAY:
                item, n = struct.unpack_from("<IQ", data, pos)
                pos += 12
                if item == _STRING:
                    for _ in range(n):
                        pos += 8 + struct.unpack_from("<Q", data, pos)[0]
                    out[key] = None
                else:
                    out[key] = list(struct.unpack_from(f"<{n}{_SCALARS[item]}", data, pos))
                    pos += n * struct.calcsize(_SCALARS[item])
            else:
                out[key] = struct.unpack_from("<" + _SCALARS[kind], data, pos)[0]
                pos += struct.calcsize(_SCALARS[kind])
        return out
    except (KeyError, struct.error) as e:
        raise ValueError(f"unreadable GGUF header ({e})") from None
    finally:
        data.close()


def _largest(value):
    # Per-layer arrays (head_count_kv of some architectures): the largest layer sizes the cache.
    return max(value) if isinstance(value, list) else value


def read_context(path: Path) -> ContextFacts:
    path = Path(path)
    try:
        meta = metadata(path)
    except (OSError, ValueError) as e:
        raise DistillError(f"{path} is not a readable GGUF file ({e}); export it again or re-download it") from None
    arch = meta.get("general.architecture")

    def get(key: str, default=None):
        return _largest(meta.get(f"{arch}.{key}", default))

    train_ctx, layers, heads = get("context_length"), get("block_count"), get("attention.head_count")
    if not (arch and train_ctx and layers and heads):
        raise DistillError(f"{path} lacks the metadata llama.cpp needs (architecture, context length, layers); "
                           "export it again with `distill export`")
    head_dim = get("embedding_length") // heads
    k_dim, v_dim = get("attention.key_length", head_dim), get("attention.value_length", head_dim)
    kv_heads = get("attention.head_count_kv", heads)
    return ContextFacts(int(train_ctx), int(layers * kv_heads * (k_dim + v_dim) * 2), path.stat().st_size)
