"""`distill pull` from a real HTTP server on loopback that misbehaves on request: a connection cut
halfway, a corrupted file, hostile and malformed manifests, a body longer than declared, Range
ignored (200 for 206), 416 for a resume, redirects within and across servers; and `distill
publish`'s plan and upload. The hub itself cannot be reached here: pulling from it stops at the
clear error huggingface_hub's offline path gives, and the upload goes to a named stand-in."""

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
from ollama_check import tiny_gguf

from distill.errors import DistillError
from distill.laptop.pull import pull


class Handler(http.server.SimpleHTTPRequestHandler):
    """A static server with `Range: bytes=N-`, plus faults set per test on the class: `cut_after`
    (drop the connection after N body bytes, once), `junk_after` (keep sending N more bytes than the
    file), `ignore_range` (200 for a Range request), `redirects` (path -> Location), `fixed`
    (path -> status, headers, body; a body without Content-Length when headers lack it)."""

    cut_after: dict = {}
    junk_after: dict = {}
    junk_sent: dict = {}
    ignore_range = False
    redirects: dict = {}
    fixed: dict = {}
    seen: list = []

    def log_message(self, *args):
        pass

    def _body(self, body: bytes) -> None:
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Range")))
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in self.fixed:
            status, headers, body = self.fixed[self.path]
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.close_connection = "Content-Length" not in headers
            try:
                self.wfile.write(body)
            except OSError:
                pass  # the client stopped reading, as it should
            return
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        data, start = path.read_bytes(), 0
        rng = self.headers.get("Range")
        if rng and not self.ignore_range:
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
        body, junk = data[start:], self.junk_after.get(path.name, 0)
        self.send_header("Content-Length", str(len(body) + junk))
        self.end_headers()
        cut = self.cut_after.pop(path.name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)
        try:
            for _ in range(junk >> 20):  # a server that would fill the client's disk
                self.wfile.write(b"\0" * (1 << 20))
                self.junk_sent[path.name] = self.junk_sent.get(path.name, 0) + (1 << 20)
        except OSError:
            pass  # the client stopped reading


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that stops reading (as it must) resets
        pass


def _serve(root: Path):
    httpd = QuietServer(("127.0.0.1", 0), lambda *a, **kw: Handler(*a, directory=str(root), **kw))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("payload")
    # 3 MiB: several 1 MiB chunks, so a cut halfway is a real partial file
    return tiny_gguf(tmp / "big.gguf", n_floats=3 << 18).read_bytes(), tiny_gguf(tmp / "small.gguf").read_bytes()


@pytest.fixture
def server(tmp_path, payloads):
    big, small = payloads
    root = tmp_path / "site" / "smol"
    root.mkdir(parents=True)
    (root / "smol-Q4_K_M.gguf").write_bytes(big)
    (root / "smol-Q8_0.gguf").write_bytes(small)
    manifest = {"name": "smol", "stop_token": "<|im_end|>", "prefill_think": True, "files": [
        {"file": "smol-Q8_0.gguf", "quant": "Q8_0", "bytes": len(small), "sha256": hashlib.sha256(small).hexdigest()},
        {"file": "smol-Q4_K_M.gguf", "quant": "Q4_K_M", "bytes": len(big), "sha256": hashlib.sha256(big).hexdigest()}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    Handler.cut_after, Handler.junk_after, Handler.junk_sent, Handler.seen = {}, {}, {}, []
    Handler.ignore_range, Handler.redirects, Handler.fixed = False, {}, {}
    httpd, base = _serve(tmp_path / "site")
    yield base + "/smol", root, big
    httpd.shutdown()
    httpd.server_close()


def ranges(name: str) -> list:
    return [r for p, r in Handler.seen if p.endswith(name)]


def test_interrupted_pull_resumes_with_range_and_verifies(server, tmp_path):
    url, _, big = server
    dest = tmp_path / "models"
    Handler.cut_after["smol-Q4_K_M.gguf"] = len(big) // 2
    with pytest.raises(DistillError, match="rerun the same command to resume"):
        pull(url, dest, "Q4_K_M")
    part = dest / "smol-Q4_K_M.gguf.part"
    assert 0 < part.stat().st_size < len(big) and not (dest / "smol-Q4_K_M.gguf").exists()
    have = part.stat().st_size
    path = pull(url, dest, "Q4_K_M")
    assert ranges("Q4_K_M.gguf") == [None, f"bytes={have}-"]
    assert path == (dest / "smol-Q4_K_M.gguf").resolve() and path.read_bytes() == big
    assert not part.exists()
    assert json.loads((dest / "manifest.json").read_text())["name"] == "smol"
    modelfile = (dest / "Modelfile").read_text()
    assert "FROM ./smol-Q4_K_M.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "{{ .Thinking }}" in (dest / "template").read_text()
    assert json.loads((dest / "params").read_text())["num_ctx"] == 8192  # from the GGUF's metadata
    # A second pull finds the verified file and downloads nothing.
    assert pull(url, dest, "Q4_K_M") == path and len(ranges("Q4_K_M.gguf")) == 2


def test_corrupted_file_is_detected_and_removed(server, tmp_path):
    url, root, big = server
    bad = bytearray(big)
    bad[-12345] ^= 0xFF
    (root / "smol-Q4_K_M.gguf").write_bytes(bytes(bad))
    dest = tmp_path / "models"
    with pytest.raises(DistillError, match="corrupted: sha256"):
        pull(url, dest, "Q4_K_M")
    assert not (dest / "smol-Q4_K_M.gguf").exists() and not (dest / "smol-Q4_K_M.gguf.part").exists()


@pytest.mark.parametrize("name", ["../evil.gguf", "/tmp/evil.gguf", "sub/../../evil.gguf", "..", "a\\..\\b.gguf",
                                  ".hidden", 7])
def test_hostile_manifest_is_refused_before_any_download(server, tmp_path, name):
    url, root, _ = server
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][0]["file"] = name  # even an entry other than the one asked for
    (root / "manifest.json").write_text(json.dumps(manifest))
    dest = tmp_path / "models"
    with pytest.raises(DistillError, match="refusing"):
        pull(url, dest, "Q4_K_M")
    assert not (tmp_path / "evil.gguf").exists() and not list(dest.glob("*.gguf*"))


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], "is a JSON list, not the object"),
    (lambda m: "just text", "is a JSON str, not the object"),
    (lambda m: {**m, "files": [{k: v for k, v in m["files"][1].items() if k != "sha256"}]}, "no valid sha256"),
    (lambda m: {**m, "files": [{**m["files"][1], "sha256": "ABC" * 21 + "D"}]}, "no valid sha256"),
    (lambda m: {**m, "files": [{**m["files"][1], "bytes": "3145728"}]}, "no valid byte count"),
    (lambda m: {**m, "files": [{**m["files"][1], "bytes": -1}]}, "no valid byte count"),
    (lambda m: {**m, "files": ["smol-Q4_K_M.gguf"]}, "not a plain file name"),
    (lambda m: {**m, "files": []}, "lists no files"),
])
def test_malformed_manifest_is_a_clear_refusal(server, tmp_path, change, message):
    url, root, _ = server
    (root / "manifest.json").write_text(json.dumps(change(json.loads((root / "manifest.json").read_text()))))
    with pytest.raises(DistillError, match=message):
        pull(url, tmp_path / "m", "Q4_K_M")
    assert not ranges(".gguf")


@pytest.mark.parametrize("with_length", [True, False])
def test_oversized_manifest_is_refused(server, tmp_path, with_length):
    url, _, _ = server
    body = b"[" + b"0," * (5 << 19) + b"0]"  # 5 MiB of valid JSON
    headers = {"Content-Length": str(len(body))} if with_length else {}
    Handler.fixed["/smol/manifest.json"] = (200, headers, body)
    with pytest.raises(DistillError, match="larger than a manifest can be"):
        pull(url, tmp_path / "m", "Q4_K_M")


def test_more_bytes_than_declared_stop_at_the_declared_size(server, tmp_path, capsys):
    url, _, big = server
    Handler.junk_after["smol-Q4_K_M.gguf"] = 64 << 20
    path = pull(url, tmp_path / "m", "Q4_K_M")
    assert path.read_bytes() == big  # nothing past the declared size was written
    assert Handler.junk_sent.get("smol-Q4_K_M.gguf", 0) < 64 << 20  # and the client stopped reading
    assert "sent more than the manifest's" in capsys.readouterr().err


def test_more_bytes_and_a_wrong_file_say_both(server, tmp_path):
    url, root, big = server
    (root / "smol-Q4_K_M.gguf").write_bytes(big[:-1] + bytes([big[-1] ^ 1]))
    Handler.junk_after["smol-Q4_K_M.gguf"] = 1 << 20
    with pytest.raises(DistillError, match="server also sent more than"):
        pull(url, tmp_path / "m", "Q4_K_M")


def test_200_for_a_resume_starts_over_cleanly(server, tmp_path):
    url, _, big = server
    dest = tmp_path / "m"
    Handler.cut_after["smol-Q4_K_M.gguf"] = len(big) // 3
    with pytest.raises(DistillError):
        pull(url, dest, "Q4_K_M")
    Handler.ignore_range = True  # a server without Range support sends the whole file again
    path = pull(url, dest, "Q4_K_M")
    assert ranges("Q4_K_M.gguf")[-1] is not None  # a resume was asked for
    assert path.read_bytes() == big  # and the partial file was not appended to


def test_a_part_longer_than_the_file_starts_over(server, tmp_path):
    url, _, big = server
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "smol-Q4_K_M.gguf.part").write_bytes(big + b"left over from another file")
    assert pull(url, dest, "Q4_K_M").read_bytes() == big
    assert ranges("Q4_K_M.gguf") == [None]  # no resume past the end (that would be a 416)


def test_416_for_a_resume_means_the_server_file_is_short(server, tmp_path):
    url, root, big = server
    (root / "smol-Q4_K_M.gguf").write_bytes(big[: 1 << 20])  # the manifest declares more than the server has
    dest = tmp_path / "m"
    dest.mkdir()
    part = dest / "smol-Q4_K_M.gguf.part"
    part.write_bytes(big[: 2 << 20])
    with pytest.raises(DistillError, match="refused to resume at byte 2097152: the server's file is shorter"):
        pull(url, dest, "Q4_K_M")
    assert not part.exists()


def test_a_resume_answered_with_the_wrong_range_is_refused(server, tmp_path):
    url, _, big = server
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "smol-Q4_K_M.gguf.part").write_bytes(big[:1000])
    Handler.fixed["/smol/smol-Q4_K_M.gguf"] = (206, {"Content-Range": f"bytes 0-{len(big) - 1}/{len(big)}",
                                                    "Content-Length": str(len(big))}, big)
    with pytest.raises(DistillError, match="answered a resume at byte 1000 with the range"):
        pull(url, dest, "Q4_K_M")


def test_redirects_within_the_server_are_followed_and_across_servers_refused(server, tmp_path):
    url, root, big = server
    base = url.rsplit("/", 1)[0]
    Handler.redirects["/old/manifest.json"] = "/smol/manifest.json"
    Handler.redirects["/old/smol-Q8_0.gguf"] = base + "/smol/smol-Q8_0.gguf"
    assert pull(base + "/old", tmp_path / "a", "Q8_0").read_bytes() == (root / "smol-Q8_0.gguf").read_bytes()
    other, other_base = _serve(root.parent)  # the same files on another server (another port: another origin)
    try:
        Handler.redirects["/smol/manifest.json"] = other_base + "/smol/manifest.json"
        with pytest.raises(DistillError, match="redirects to http://127.0.0.1, another server; refusing"):
            pull(url, tmp_path / "b", "Q8_0")
        Handler.redirects.clear()
        Handler.redirects["/smol/smol-Q8_0.gguf"] = other_base + "/smol/smol-Q8_0.gguf"
        with pytest.raises(DistillError, match="another server; refusing"):
            pull(url, tmp_path / "c", "Q8_0")
        assert not list((tmp_path / "c").glob("*.gguf"))
    finally:
        other.shutdown()
        other.server_close()


def test_unknown_quant_and_bad_url_are_clear(server, tmp_path):
    url, _, _ = server
    with pytest.raises(DistillError, match=r"no Q2_K file in this export; it has \['Q8_0', 'Q4_K_M'\]"):
        pull(url, tmp_path / "m", "Q2_K")
    with pytest.raises(DistillError, match="HTTP 404"):
        pull(url + "-missing", tmp_path / "m", "Q4_K_M")
    with pytest.raises(DistillError, match="not an http"):
        pull("ftp:/nowhere", tmp_path / "m", "Q4_K_M")


def test_pull_from_a_local_export_folder(server, tmp_path):
    _, root, _ = server
    path = pull(str(root), tmp_path / "m", "Q8_0")
    assert path.read_bytes() == (root / "smol-Q8_0.gguf").read_bytes()


def test_hub_pull_without_network_is_a_clear_error(tmp_path, monkeypatch):
    """Stand-in for the hub: none is reachable here, so huggingface_hub runs offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(DistillError, match="could not download me/smol-r1 from the hub"):
        pull("me/smol-r1", tmp_path / "m", "Q4_K_M")
