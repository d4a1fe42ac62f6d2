"""Record IO for every stage: problems, traces and verdicts as JSON Lines (SPEC.md).

Reads tolerate a torn last line (a writer killed mid-line) and report malformed lines with a
reason instead of crashing; appends repair a torn tail first; whole-file writes are atomic, also
when streamed line by line (`JsonlWriter`, which hashes what it writes). Files of many gigabytes
are never held in memory: they are read line by line, and a stage key takes a `fingerprint`
(size, mtime and sampled blocks) instead of re-reading them. One writer per file: `WriterLock`.

    for rec in read_records(path, Trace): ...
    with JsonlAppender(path) as out: out.write(trace.model_dump())
    with WriterLock(path): ...  # a second process gets a DistillError naming the holder
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill.errors import DistillError

Domain = Literal["math", "code", "choice"]


class CodeTest(BaseModel):
    """stdin/stdout test, or call-based with `fn_name`: then `input` is a JSON array of the
    arguments and `output` the JSON of the return value (distill/filter/code_tests.py)."""

    model_config = ConfigDict(extra="forbid")
    input: str
    output: str
    fn_name: str | None = None


class Problem(BaseModel):
    """One problem with its gold answer (data/problems/*.jsonl)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)
    problem: str = Field(min_length=1)
    answer: str
    domain: Domain = "math"
    tests: list[CodeTest] | None = None
    time_limit_s: float | None = Field(None, gt=0)  # code: CPU seconds per test
    memory_mb: int | None = Field(None, gt=0)  # code
    choices: list[str] | None = None
    source: str | None = None
    split: Literal["train", "eval"] | None = None

    @model_validator(mode="after")
    def _domain_fields(self) -> Problem:
        if self.domain == "code" and not self.tests:
            raise ValueError("a code problem needs `tests`")
        if self.domain == "choice" and not self.choices:
            raise ValueError("a choice problem needs `choices`")
        return self


class Verdict(BaseModel):
    accepted: bool
    reasons: list[str] = []


class Provenance(BaseModel):
    """What made a trace: `settings` hashes everything that changes what a trace is (teacher model,
    prompt template, sampling parameters); `prompt` hashes the exact messages sent; `params` are the
    sampling parameters themselves, for people reading the file."""

    model_config = ConfigDict(extra="allow")
    settings: str
    prompt: str | None = None
    params: dict[str, Any] | None = None


class Trace(BaseModel):
    """One teacher sample in R1 form (the reasoning stored once, inside `completion`, unless an
    external file gave it only in `reasoning_content`); the filter adds `verdict`."""

    model_config = ConfigDict(extra="allow")
    problem_id: str = Field(min_length=1)
    sample_index: int = Field(ge=0)
    problem: str
    answer: str
    domain: Domain = "math"
    teacher: str
    completion: str
    reasoning_content: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tests: list[CodeTest] | None = None
    time_limit_s: float | None = Field(None, gt=0)  # code: the problem's limits
    memory_mb: int | None = Field(None, gt=0)
    choices: list[str] | None = None
    provenance: Provenance | None = None
    verdict: Verdict | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.problem_id, self.sample_index)


@dataclass
class BadLine:
    """A line that is not a valid record: kept verbatim with the reason."""

    line: int
    raw: str
    reason: str


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "record"
    return f"{loc}: {first['msg']}"


def iter_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Yield (line number, text, complete) for each line; the last may lack its newline."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            complete = raw.endswith(b"\n")
            yield n, raw.decode("utf-8", errors="replace").rstrip("\r\n"), complete


def parse_record(text: str, model: type[BaseModel], line: int = 0) -> BaseModel | BadLine:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return BadLine(line, text, f"not JSON: {e.msg}")
    if not isinstance(obj, dict):
        return BadLine(line, text, "not a JSON object")
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        return BadLine(line, text, _describe(e))


def read_records(path: str | Path, model: type[BaseModel]) -> Iterator[BaseModel | BadLine]:
    """Every line of `path` as a `model` instance or a BadLine. Blank lines are skipped; a torn
    last line (no newline, not valid JSON) is dropped silently: it is an interrupted write."""
    path = Path(path)
    for n, text, complete in iter_lines(path):
        if not text.strip():
            continue
        rec = parse_record(text, model, n)
        if isinstance(rec, BadLine) and not complete and rec.reason.startswith("not JSON"):
            return
        yield rec


def load_problems(path: str | Path) -> list[Problem]:
    """All problems in a file; any bad line is a user error naming the line."""
    path = Path(path)
    if not path.exists():
        raise DistillError(f"problem file {path} not found")
    problems, seen = [], set()
    for rec in read_records(path, Problem):
        if isinstance(rec, BadLine):
            raise DistillError(f"{path}:{rec.line}: not a valid problem ({rec.reason})")
        if rec.id in seen:
            raise DistillError(f"{path}: problem id {rec.id!r} appears twice; ids must be unique")
        seen.add(rec.id)
        problems.append(rec)
    return problems


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline) off an append-only file; returns bytes cut."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the previous newline in blocks.
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            idx = block.rfind(b"\n")
            if idx >= 0:
                keep = pos - step + idx + 1
                break
            pos -= step
        else:
            keep = 0
        f.truncate(keep)
        return size - keep


class JsonlAppender:
    """Append-only JSONL writer: each record is one write of one whole line, flushed at once, so a
    kill loses at most the line being written (and `repair_tail` drops that on the next open)."""

    def __init__(self, path: str | Path, fsync_every: int = 32):
        self.path = Path(path)
        self.fsync_every = fsync_every
        self._n = 0
        self._f = None

    def __enter__(self) -> JsonlAppender:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._f = open(self.path, "ab")
        return self

    def write(self, obj: Any) -> None:
        if isinstance(obj, BaseModel):
            obj = obj.model_dump(exclude_none=True)
        self._f.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
        self._f.flush()
        self._n += 1
        if self._n % self.fsync_every == 0:
            os.fsync(self._f.fileno())

    def __exit__(self, *exc) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JsonlWriter:
    """A whole JSONL file written line by line yet atomically: lines go to a temp file beside
    `path`, which replaces `path` (after fsync) only when the block ends without an error. The
    sha256 of what was written is kept as it goes, so no one re-reads a large file to hash it.

        with JsonlWriter(out_dir / "accepted.jsonl") as out:
            out.write(row)
        out.sha256, out.count"""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0
        self.bytes = 0
        self._hash = hashlib.sha256()
        self._f = None
        self._tmp: str | None = None

    def __enter__(self) -> JsonlWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)
        self._f = os.fdopen(fd, "wb", buffering=1 << 20)
        return self

    def write(self, obj: Any) -> None:
        """One record: a pydantic model, a JSON-able object, or a str that is already one JSON line."""
        if isinstance(obj, BaseModel):
            obj = obj.model_dump(exclude_none=True)
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        data = (text + "\n").encode("utf-8")
        self._f.write(data)
        self._hash.update(data)
        self.count += 1
        self.bytes += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self._f.flush()
                os.fsync(self._f.fileno())
            self._f.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
                return
        except BaseException:
            Path(self._tmp).unlink(missing_ok=True)
            raise
        Path(self._tmp).unlink(missing_ok=True)  # the block failed: the old file, if any, stays


def write_jsonl(path: str | Path, records: Iterable[Any]) -> str:
    """Write a whole JSONL file atomically (temp file, fsync, rename); returns its sha256."""
    with JsonlWriter(path) as out:
        for r in records:
            out.write(r)
    return out.sha256


def write_json(path: str | Path, obj: Any) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_text(path: str | Path, text: str) -> None:
    _atomic_write_bytes(Path(path), text.encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (GGUF files are gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def short_sha(path: str | Path) -> str:
    """The first 16 hex digits of `sha256_file`: a content key for caches and stage keys."""
    return sha256_file(path)[:16]


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def fingerprint(path: str | Path, blocks: int = 8, block_size: int = 1 << 16) -> str:
    """A cheap stand-in for a content hash of a large file: its size, its mtime and the sha256 of
    `blocks` blocks read at evenly spaced offsets (the last block included, where appends land).
    Any append, truncation or rewrite changes it; reading it costs `blocks` seeks, not the file."""
    path = Path(path)
    if not path.exists():
        return "missing"
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        last = max(0, st.st_size - block_size)
        for k in range(blocks):
            f.seek(last * k // max(1, blocks - 1))
            h.update(f.read(block_size))
    return h.hexdigest()[:16]


class WriterLock:
    """One writer per file: an exclusive, non-blocking flock on `<path>.lock` held for the block.
    A second process (or a second sampler on the same file) gets a DistillError naming the holder's
    pid instead of interleaving its lines; the same process may take it again (re-entrant), so the
    pipeline can hold it around the sampler. The kernel drops the lock when the holder dies, even
    by kill -9, so a stale lock file never blocks anyone.

        with WriterLock(traces_path, what="sampler"): ..."""

    _held: dict[str, list] = {}  # lock path -> [fd, depth], in this process

    def __init__(self, path: str | Path, what: str = "writer"):
        self.path = Path(str(path) + ".lock")
        self.target = Path(path)
        self.what = what

    def __enter__(self) -> WriterLock:
        key = str(self.path.resolve())
        if key in self._held:
            self._held[key][1] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise DistillError(f"{self.target} is being written by {holder}; only one {self.what} may write it "
                               "at a time. Wait for that one to finish (or stop it), then rerun") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.what} pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        self._held[key] = [fd, 1]
        return self

    def __exit__(self, *exc) -> None:
        key = str(self.path.resolve())
        entry = self._held[key]
        entry[1] -= 1
        if entry[1] == 0:
            del self._held[key]
            os.close(entry[0])  # closing the descriptor releases the flock
