"""Download one exported student: the manifest first, then the chosen quant, resuming a partial
file and checking its sha256 against the manifest; then the Ollama files beside it.

A source is an HTTP(S) URL of an export folder (any static server), a local export folder, or a
hub repo id (`ORG/REPO`, through huggingface_hub). The manifest is checked before anything is
written (distill.laptop.manifest), the transfer is bounded by it (distill.laptop.download).

    path = pull("http://host/export/smol", Path("models/smol"), quant="Q4_K_M")
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from distill.errors import DistillError
from distill.laptop.manifest import choose, parse_manifest
from distill.records import sha256_file

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _verify(part: Path, target: Path, entry: dict, note: str = "") -> Path:
    got = sha256_file(part)
    if got != entry["sha256"]:
        part.unlink(missing_ok=True)
        raise DistillError(f"{entry['file']} is corrupted: sha256 {got[:16]}… does not match the manifest's "
                           f"{entry['sha256'][:16]}…{note}; the partial file was removed, rerun to download it again")
    os.replace(part, target)
    return target


def _from_http(base: str, dest: Path, quant: str) -> tuple[dict, Path]:
    import httpx
    from rich.console import Console

    from distill.laptop.download import download, get_manifest

    base = base.rstrip("/")
    with httpx.Client(follow_redirects=False, timeout=httpx.Timeout(30.0, read=120.0)) as client:
        manifest = get_manifest(client, f"{base}/manifest.json")
        entry, target = choose(manifest, quant, dest)
        if target.exists() and sha256_file(target) == entry["sha256"]:
            return manifest, target
        part = target.with_name(target.name + ".part")
        if part.exists() and part.stat().st_size >= entry["bytes"]:
            # Whole already (a run stopped before verifying), or longer than the file can be: verify or restart.
            if part.stat().st_size == entry["bytes"] and sha256_file(part) == entry["sha256"]:
                return manifest, _verify(part, target, entry)
            part.unlink()
        url = f"{base}/{entry['file']}"
        overflow = download(client, url, part, entry["bytes"])
    note = f" (the server also sent more than the {entry['bytes']} bytes the manifest declares)" if overflow else ""
    path = _verify(part, target, entry, note)
    if overflow:
        Console(stderr=True).print(f"note: {url} sent more than the manifest's {entry['bytes']} bytes; the rest was "
                                   "not read (the file matches its sha256)", style="yellow", highlight=False)
    return manifest, path


def _from_dir(src: Path, dest: Path, quant: str) -> tuple[dict, Path]:
    manifest = parse_manifest((src / "manifest.json").read_bytes(), str(src / "manifest.json"))
    entry, target = choose(manifest, quant, dest)
    part = target.with_name(target.name + ".part")
    shutil.copyfile(src / entry["file"], part)
    return manifest, _verify(part, target, entry)


def _from_hub(repo_id: str, dest: Path, quant: str, revision: str | None) -> tuple[dict, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        # hf_hub_download resumes partial files itself; we check the sha256 afterwards.
        mpath = hf_hub_download(repo_id, "manifest.json", revision=revision, local_dir=dest / ".hub")
        manifest = parse_manifest(Path(mpath).read_bytes(), f"{repo_id}/manifest.json")
        entry, target = choose(manifest, quant, dest)
        fpath = hf_hub_download(repo_id, entry["file"], revision=revision, local_dir=dest / ".hub")
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise DistillError(f"could not download {repo_id} from the hub: {str(e).splitlines()[0]}; check the repo id, "
                           "your network and `hf auth login` for private repos") from None
    part = target.with_name(target.name + ".part")
    os.replace(fpath, part)
    return manifest, _verify(part, target, entry)


def pull(source: str, dest: Path, quant: str = "Q4_K_M", revision: str | None = None) -> Path:
    """Fetch `quant` of the export at `source` into `dest`; returns the verified GGUF path."""
    from distill.export.ollama import style_of, write_files
    from distill.records import write_json

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if source.startswith(("http://", "https://")):
        manifest, target = _from_http(source, dest, quant)
    elif Path(source).is_dir():
        if not (Path(source) / "manifest.json").exists():
            raise DistillError(f"{source} has no manifest.json; point at an export folder (export/<name>/)")
        manifest, target = _from_dir(Path(source), dest, quant)
    elif _HUB_ID.match(source):
        manifest, target = _from_hub(source, dest, quant, revision)
    else:
        raise DistillError(f"{source!r} is not an http(s) URL, an export folder or a hub repo id (ORG/REPO)")
    write_json(dest / "manifest.json", manifest)
    # Only known stop tokens reach the Modelfile: a manifest from elsewhere must not write its lines.
    stop = manifest.get("stop_token") if style_of(manifest.get("stop_token")) else "<|im_end|>"
    write_files(dest, target, stop, manifest.get("prefill_think") is not False)
    return target
