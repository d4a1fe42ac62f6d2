"""An export's `manifest.json` as a downloader must read it: untrusted until checked. It must be
a JSON object whose `files` entries each give a plain file name (nothing that could leave the
target folder), a sha256 and a byte count; `pull` and `publish` act only on checked entries.

    manifest = parse_manifest(raw_bytes, "http://host/export/smol/manifest.json")
    entry, target = choose(manifest, "Q4_K_M", Path("models/smol"))
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from distill.errors import DistillError

MAX_MANIFEST_BYTES = 4 << 20  # a manifest of a dozen quants is a few KiB
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def safe_name(name: object, dest: Path) -> Path:
    """`dest/name` for a plain file name; anything that could leave `dest` is refused."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
        raise DistillError(f"manifest names the file {name!r}, which is not a plain file name; refusing to "
                           "write outside the target folder (is this manifest from `distill export`?)")
    path = (dest / name).resolve()
    if path.parent != dest.resolve():
        raise DistillError(f"manifest file {name!r} would leave {dest}; refusing")
    return path


def oversized(where: str) -> DistillError:
    return DistillError(f"{where} is larger than a manifest can be ({MAX_MANIFEST_BYTES >> 20} MiB); refusing "
                        "(is this the URL of an export folder?)")


def parse_manifest(raw: bytes, where: str) -> dict:
    """The manifest at `where` (a URL or path, for messages) as a JSON object, or a clear refusal."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise oversized(where)
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise DistillError(f"{where} is not JSON; is this the URL of an export folder?") from None
    if not isinstance(manifest, dict):
        raise DistillError(f"{where} is a JSON {type(manifest).__name__}, not the object `distill export` writes; "
                           "refusing")
    return manifest


def check_entry(entry: object, dest: Path) -> dict:
    """One `files` entry: a plain name, a sha256 to verify against and the byte count to stop at."""
    name = entry.get("file") if isinstance(entry, dict) else None
    safe_name(name, dest)
    sha = entry.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise DistillError(f"manifest entry {name!r} has no valid sha256 (64 lowercase hex digits); "
                           "refusing to trust it")
    size = entry.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise DistillError(f"manifest entry {name!r} has no valid byte count (`bytes`: {size!r}); refusing to "
                           "download a file of unknown size")
    return entry


def check_files(manifest: dict, dest: Path) -> list[dict]:
    """Every `files` entry, checked; a manifest without any is refused."""
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise DistillError("the manifest lists no files; is this an export folder made by `distill export`?")
    return [check_entry(f, dest) for f in files]


def choose(manifest: dict, quant: str, dest: Path) -> tuple[dict, Path]:
    """The manifest entry for `quant`, after checking every entry in the manifest."""
    files = check_files(manifest, dest)
    entry = next((f for f in files if f.get("quant") == quant), None)
    if entry is None:
        raise DistillError(f"no {quant} file in this export; it has {[f.get('quant') for f in files]} (use --quant)")
    return entry, safe_name(entry["file"], dest)
