"""Download one exported student: the manifest first, then the chosen quant, resuming a partial
file with HTTP Range requests and checking its sha256 against the manifest.

A source is an HTTP(S) URL of an export folder (any static server), a local export folder, or a
hub repo id (`ORG/REPO`, through huggingface_hub). File names in a manifest are refused unless they
are plain names inside the target folder.

    path = pull("http://host/export/smol", Path("models/smol"), quant="Q4_K_M")
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from distill.errors import DistillError
from distill.records import sha256_file

MAX_MANIFEST_BYTES = 4 << 20
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def safe_name(name: object, dest: Path) -> Path:
    """`dest/name` for a plain file name; anything that could leave `dest` is refused."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
        raise DistillError(f"manifest names the file {name!r}, which is not a plain file name; refusing to "
                           "write outside the target folder (is this manifest from `distill export`?)")
    path = (dest / name).resolve()
    if path.parent != dest.resolve():
        raise DistillError(f"manifest file {name!r} would leave {dest}; refusing")
    return path


def choose(manifest: dict, quant: str, dest: Path) -> tuple[dict, Path]:
    """The manifest entry for `quant` (after checking every name in the manifest)."""
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise DistillError("the manifest lists no files; is this an export folder made by `distill export`?")
    for f in files:
        safe_name(f.get("file") if isinstance(f, dict) else None, dest)
        if not isinstance(f.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", f["sha256"]):
            raise DistillError(f"manifest entry {f.get('file')!r} has no valid sha256; refusing to trust it")
    entry = next((f for f in files if f.get("quant") == quant), None)
    if entry is None:
        raise DistillError(f"no {quant} file in this export; it has {[f.get('quant') for f in files]} (use --quant)")
    return entry, safe_name(entry["file"], dest)


def _verify(part: Path, target: Path, entry: dict) -> Path:
    got = sha256_file(part)
    if got != entry["sha256"]:
        part.unlink(missing_ok=True)
        raise DistillError(f"{entry['file']} is corrupted: sha256 {got[:16]}… does not match the manifest's "
                           f"{entry['sha256'][:16]}…; the partial file was removed, rerun to download it again")
    os.replace(part, target)
    return target


def _http_get_json(client, url: str) -> dict:
    import httpx

    try:
        r = client.get(url)
    except httpx.HTTPError as e:
        raise DistillError(f"could not fetch {url}: {e}; check the URL and that the server is up") from None
    if r.status_code != 200:
        raise DistillError(f"{url} answered HTTP {r.status_code}; is this the URL of an export folder?")
    if len(r.content) > MAX_MANIFEST_BYTES:
        raise DistillError(f"{url} is larger than a manifest can be; refusing")
    try:
        return json.loads(r.content)
    except ValueError:
        raise DistillError(f"{url} is not JSON; is this the URL of an export folder?") from None


def _http_download(client, url: str, part: Path, total: int | None) -> None:
    """Append to `part` from where it stops (Range), or start over when the server sends it whole."""
    import httpx
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with client.stream("GET", url, headers=headers) as r:
            if r.status_code == 416:  # the part is already whole (or longer): verify decides
                return
            if r.status_code not in (200, 206):
                raise DistillError(f"{url} answered HTTP {r.status_code}")
            mode = "ab" if r.status_code == 206 else "wb"  # 200: the server ignored Range
            start = have if mode == "ab" else 0
            with open(part, mode) as f, Progress(*Progress.get_default_columns(), DownloadColumn(),
                                                TransferSpeedColumn()) as progress:
                task = progress.add_task(part.name.removesuffix(".part"), total=total, completed=start)
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
                    progress.advance(task, len(chunk))
    except httpx.HTTPError as e:
        raise DistillError(f"download of {url} stopped ({e}); rerun the same command to resume") from None


def _from_http(base: str, dest: Path, quant: str) -> tuple[dict, Path]:
    import httpx

    base = base.rstrip("/")
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0)) as client:
        manifest = _http_get_json(client, f"{base}/manifest.json")
        entry, target = choose(manifest, quant, dest)
        if target.exists() and sha256_file(target) == entry["sha256"]:
            return manifest, target
        part = target.with_name(target.name + ".part")
        _http_download(client, f"{base}/{entry['file']}", part, entry.get("bytes"))
    return manifest, _verify(part, target, entry)


def _from_dir(src: Path, dest: Path, quant: str) -> tuple[dict, Path]:
    manifest = json.loads((src / "manifest.json").read_text())
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
        manifest = json.loads(Path(mpath).read_text())
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
    from distill.export.gguf import modelfile
    from distill.records import write_json, write_text

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
    stop = manifest.get("stop_token") if manifest.get("stop_token") in ("<|im_end|>", "<|eot_id|>") else "<|im_end|>"
    write_text(dest / "Modelfile", modelfile(target.name, stop, manifest.get("prefill_think") is not False))
    return target
