"""Stage 5, export: a student HF folder in, GGUF files out, each proven before it is listed.

llama.cpp's converter writes F16 (`distill.hf_to_gguf`), `quants` computes an importance matrix and
makes the ladder with llama.cpp's tools, `prove` and `parity` check each file against the HF model
(tokenizer, F16 logits, a single BOS), `kld` measures each quant against F16 on held-out conversations
(`heldout`); `export/<name>/` gets the GGUFs, `manifest.json`, an Ollama Modelfile and a model card (`card`).

    manifest = distill.export.run(Path("student"), Path("export/smol"), "smol", recipe.export, base_model, ...)
"""

from distill.export.gguf import run

__all__ = ["run"]
