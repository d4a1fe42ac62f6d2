"""Stage 5, export: a student HF folder in, GGUF files out, each proven before it is listed.

llama.cpp's converter writes F16, `quants` makes the ladder, `parity` proves each file against the
HF model (tokenizer, logits, perplexity); `export/<name>/` gets the GGUFs, `manifest.json`, an Ollama
Modelfile and a model card.

    manifest = distill.export.run(Path("student"), Path("export/smol"), "smol", ["Q8_0"], base_model)
"""

from distill.export.gguf import run

__all__ = ["run"]
