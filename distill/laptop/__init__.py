"""The laptop side of an exported student: `chat` with it through llama.cpp (session: the
multi-turn loop; chat: one streamed reply), `serve` it on 127.0.0.1 (llama.cpp's OpenAI-compatible
server and a browser chat page, web), `pull` one quant from an export folder or a hub repo
(manifest checks, bounded resumable download, sha256), `publish` an export folder to the hub."""
