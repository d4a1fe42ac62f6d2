"""HTTP for `distill pull`, hardened against the server: redirects are followed only within the
same scheme, host and port; a manifest is read up to its size limit, never more; a file is written
up to the byte count the manifest declares, never more, resuming with a Range request and starting
over cleanly when the server ignores it (200 instead of 206).

    with httpx.Client(timeout=30) as client:
        manifest = get_manifest(client, "http://host/export/smol/manifest.json")
        download(client, "http://host/export/smol/smol-Q4_K_M.gguf", Path("x.gguf.part"), size=1234)
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

from distill.errors import DistillError
from distill.laptop.manifest import MAX_MANIFEST_BYTES, oversized, parse_manifest

MAX_REDIRECTS = 5
_CONTENT_RANGE = re.compile(r"bytes (\d+)-")


def _origin(url) -> tuple:
    return url.scheme, url.host, url.port


@contextmanager
def _get(client, url: str, headers: dict | None = None):
    """A streamed GET that follows redirects to the same origin only: the manifest names the files
    its server holds, so a hop to another host is refused (https -> http too)."""
    import httpx

    first = httpx.URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", url, headers=headers or {}) as r:
            if not r.is_redirect:
                yield r
                return
            target = r.url.join(r.headers.get("location", ""))
            if _origin(target) != _origin(first):
                raise DistillError(f"{url} redirects to {target.scheme}://{target.host}, another server; refusing "
                                   f"(an export's manifest and files come from one server; if you trust {target}, "
                                   "pull from it directly)")
            url = str(target)
    raise DistillError(f"{first} redirected more than {MAX_REDIRECTS} times; refusing")


def get_manifest(client, url: str) -> dict:
    import httpx

    try:
        with _get(client, url) as r:
            if r.status_code != 200:
                raise DistillError(f"{url} answered HTTP {r.status_code}; is this the URL of an export folder?")
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
                raise oversized(url)  # refused unread
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    break  # refused below; the rest is never read
    except httpx.HTTPError as e:
        raise DistillError(f"could not fetch {url}: {e}; check the URL and that the server is up") from None
    return parse_manifest(bytes(body), url)


def download(client, url: str, part: Path, size: int) -> bool:
    """Fill `part` up to `size` bytes from where it stops; True when the server offered more bytes
    than that (they are not read). Raises with a rerun hint when the transfer ends early."""
    import httpx
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    overflow = False
    try:
        with _get(client, url, headers) as r:
            if r.status_code == 416:
                part.unlink(missing_ok=True)
                raise DistillError(f"{url} refused to resume at byte {have}: the server's file is shorter than the "
                                   f"{size} bytes the manifest declares; the partial file was removed (the export "
                                   "on the server is inconsistent; re-export or re-upload it)")
            if r.status_code not in (200, 206):
                raise DistillError(f"{url} answered HTTP {r.status_code}")
            start = have if r.status_code == 206 else 0  # 200: the server ignored Range, start over
            if r.status_code == 206:
                m = _CONTENT_RANGE.match(r.headers.get("content-range", ""))
                if not m or int(m.group(1)) != have:
                    raise DistillError(f"{url} answered a resume at byte {have} with the range "
                                       f"{r.headers.get('content-range')!r}; rerun to try again")
            written = start
            with open(part, "ab" if start else "wb") as f, Progress(*Progress.get_default_columns(), DownloadColumn(),
                                                                    TransferSpeedColumn()) as progress:
                task = progress.add_task(part.name.removesuffix(".part"), total=size, completed=start)
                for chunk in r.iter_bytes(1 << 20):
                    if len(chunk) > size - written:  # never past the declared size: a server cannot fill the disk
                        chunk, overflow = chunk[: size - written], True
                    f.write(chunk)
                    written += len(chunk)
                    progress.advance(task, len(chunk))
                    if overflow:
                        break
    except httpx.HTTPError as e:
        raise DistillError(f"download of {url} stopped ({e}); rerun the same command to resume") from None
    if written < size:
        raise DistillError(f"download of {url} ended at {written} of {size} bytes; rerun the same command to resume")
    return overflow
