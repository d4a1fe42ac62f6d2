"""`distill pull` from a real static HTTP server on loopback (Range support, a connection cut
halfway, a corrupted file, a hostile manifest) and `distill publish`'s plan and errors. The hub
itself cannot be reached here: those tests stop at the clear error huggingface_hub's path gives."""

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.laptop.pull import pull

PAYLOAD = os.urandom(3 << 20)  # 3 MiB: several 1 MiB chunks, so a cut halfway is a real partial file


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server with `Range: bytes=N-` support; `cut_after` bytes of a file body the
    first time it is sent, then the connection is dropped (a download interrupted halfway)."""

    cut_after: dict = {}
    seen_ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            self.seen_ranges.append((path.name, rng))
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.cut_after.pop(path.name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "site" / "smol"
    root.mkdir(parents=True)
    (root / "smol-Q4_K_M.gguf").write_bytes(PAYLOAD)
    (root / "smol-Q8_0.gguf").write_bytes(PAYLOAD[:1000])
    manifest = {"name": "smol", "stop_token": "<|im_end|>", "prefill_think": True, "files": [
        {"file": "smol-Q8_0.gguf", "quant": "Q8_0", "bytes": 1000, "sha256": hashlib.sha256(PAYLOAD[:1000]).hexdigest()},
        {"file": "smol-Q4_K_M.gguf", "quant": "Q4_K_M", "bytes": len(PAYLOAD),
         "sha256": hashlib.sha256(PAYLOAD).hexdigest()}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    RangeHandler.cut_after, RangeHandler.seen_ranges = {}, []

    def handler(*a, **kw):
        return RangeHandler(*a, directory=str(tmp_path / "site"), **kw)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/smol", root
    httpd.shutdown()
    httpd.server_close()


def test_interrupted_pull_resumes_with_range_and_verifies(server, tmp_path):
    url, _ = server
    dest = tmp_path / "models"
    RangeHandler.cut_after["smol-Q4_K_M.gguf"] = len(PAYLOAD) // 2
    with pytest.raises(DistillError, match="rerun the same command to resume"):
        pull(url, dest, "Q4_K_M")
    part = dest / "smol-Q4_K_M.gguf.part"
    assert 0 < part.stat().st_size < len(PAYLOAD) and not (dest / "smol-Q4_K_M.gguf").exists()
    have = part.stat().st_size
    path = pull(url, dest, "Q4_K_M")
    assert RangeHandler.seen_ranges == [("smol-Q4_K_M.gguf", f"bytes={have}-")]
    assert path == (dest / "smol-Q4_K_M.gguf").resolve() and path.read_bytes() == PAYLOAD
    assert not part.exists()
    assert json.loads((dest / "manifest.json").read_text())["name"] == "smol"
    modelfile = (dest / "Modelfile").read_text()
    assert "FROM ./smol-Q4_K_M.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    # A second pull finds the verified file and downloads nothing.
    assert pull(url, dest, "Q4_K_M") == path and len(RangeHandler.seen_ranges) == 1


def test_corrupted_file_is_detected_and_removed(server, tmp_path):
    url, root = server
    bad = bytearray(PAYLOAD)
    bad[12345] ^= 0xFF
    (root / "smol-Q4_K_M.gguf").write_bytes(bytes(bad))
    dest = tmp_path / "models"
    with pytest.raises(DistillError, match="corrupted: sha256"):
        pull(url, dest, "Q4_K_M")
    assert not (dest / "smol-Q4_K_M.gguf").exists() and not (dest / "smol-Q4_K_M.gguf.part").exists()


@pytest.mark.parametrize("name", ["../evil.gguf", "/tmp/evil.gguf", "sub/../../evil.gguf", "..", "a\\..\\b.gguf",
                                  ".hidden", 7])
def test_hostile_manifest_is_refused_before_any_download(server, tmp_path, name):
    url, root = server
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][0]["file"] = name  # even an entry other than the one asked for
    (root / "manifest.json").write_text(json.dumps(manifest))
    dest = tmp_path / "models"
    with pytest.raises(DistillError, match="refusing"):
        pull(url, dest, "Q4_K_M")
    assert not (tmp_path / "evil.gguf").exists() and not list(dest.glob("*.gguf*"))


def test_unknown_quant_and_bad_url_are_clear(server, tmp_path):
    url, _ = server
    with pytest.raises(DistillError, match=r"no Q2_K file in this export; it has \['Q8_0', 'Q4_K_M'\]"):
        pull(url, tmp_path / "m", "Q2_K")
    with pytest.raises(DistillError, match="HTTP 404"):
        pull(url + "-missing", tmp_path / "m", "Q4_K_M")
    with pytest.raises(DistillError, match="not an http"):
        pull("ftp:/nowhere", tmp_path / "m", "Q4_K_M")


def test_pull_from_a_local_export_folder(server, tmp_path):
    _, root = server
    path = pull(str(root), tmp_path / "m", "Q8_0")
    assert path.read_bytes() == PAYLOAD[:1000]


def test_hub_pull_without_network_is_a_clear_error(tmp_path, monkeypatch):
    """Stand-in for the hub: none is reachable here, so huggingface_hub runs offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(DistillError, match="could not download me/smol-r1 from the hub"):
        pull("me/smol-r1", tmp_path / "m", "Q4_K_M")


def test_publish_plan_verifies_and_needs_a_token(server, tmp_path, monkeypatch):
    from distill.laptop.publish import publish, upload_plan

    _, root = server
    (root / "README.md").write_text("# smol\n")
    plan = upload_plan(root)
    assert [p["file"] for p in plan] == ["smol-Q8_0.gguf", "smol-Q4_K_M.gguf", "manifest.json", "README.md"]
    assert publish(root, "me/smol-r1", dry_run=True) == plan
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    with pytest.raises(DistillError, match="no Hugging Face token"):
        publish(root, "me/smol-r1")
    (root / "smol-Q8_0.gguf").write_bytes(b"tampered")
    with pytest.raises(DistillError, match="does not match its manifest sha256"):
        upload_plan(root)
