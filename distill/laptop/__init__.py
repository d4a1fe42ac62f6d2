"""The laptop side of an exported student: `chat` with it through llama.cpp, `pull` one quant from
an export folder or a hub repo (resuming, sha256 checked), `publish` an export folder to the hub."""
