"""Sandbox for judging code answers: run an untrusted program on stdin, compare its stdout.

    ok = passes_tests(code, [{"input": "2 3\\n", "output": "5\\n"}], SandboxLimits(wall_s=5))
    print(isolation())   # what is in force on this machine

Layers, each stopping what the one before may miss:
1. A separate process in its own session, with rlimits: CPU seconds, address space, processes,
   file size (stdout goes to a file, so it is capped too), open files, no core dumps. A small
   trampoline sets them (and the namespace) in the child, then execs the sandboxed interpreter.
2. A wall timeout, after which the whole process group (and the pids cgroup, if any) is killed.
3. A fresh temporary working dir, removed afterwards, and a scrubbed environment (PATH, LANG and
   HOME only): no secret of ours is visible.
4. No network: a new network namespace (its loopback is down, so not even 127.0.0.1 answers);
   as root that is `unshare(CLONE_NEWNET)`, otherwise `unshare(CLONE_NEWUSER|CLONE_NEWNET)`.
   Where the kernel refuses both, `isolation()["network"]` says so and only layer 5 stops sockets.
5. An interpreter guard (a `sys.addaudithook` hook installed before the program runs): no sockets,
   no fork/exec/subprocess, no ctypes, no writes, renames or deletes outside the working dir.
   Audit hooks are not a security boundary on their own; here they back up 1-4.

RLIMIT_NPROC does not bind root (the kernel exempts it), so as root a pids cgroup (v1 or v2)
caps the processes where /sys/fs/cgroup is writable; `isolation()["processes"]` names which.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000

GUARD = r'''
import os, sys
_WORK = os.path.realpath(os.getcwd())
_BLOCKED = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
            "subprocess.Popen", "os.kill", "os.killpg", "socket.__new__", "socket.connect",
            "socket.bind", "socket.sendto", "socket.getaddrinfo", "ctypes.dlopen", "ctypes.dlsym",
            "ctypes.cdata", "os.putenv", "os.unsetenv", "os.chdir", "os.chroot", "sys.setprofile"}
_PATHS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
          "os.link", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_realpath, _fspath = os.path.realpath, os.fspath

def _inside(p):
    if isinstance(p, int):
        return True
    p = _realpath(_fspath(p) if not isinstance(p, bytes) else p.decode(errors="replace"))
    return p == _WORK or p.startswith(_WORK + os.sep)

def _hook(event, args):
    if event in _BLOCKED or (event == "import" and args[0] in ("ctypes", "_ctypes")):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE
        if writing and path is not None and not _inside(path):
            raise PermissionError(f"sandbox: writing {path} is not allowed")
    elif event in _PATHS:
        for p in args[:2]:
            if isinstance(p, (str, bytes, os.PathLike)) and not _inside(p):
                raise PermissionError(f"sandbox: {event} on {p} is not allowed")

sys.addaudithook(_hook)
import runpy
runpy.run_path("main.py", run_name="__main__")
'''


# Set up the limits in the new process itself, then exec the sandboxed interpreter: no
# `preexec_fn`, which is unsafe when the parent has threads (a progress bar, a process pool).
TRAMPOLINE = r'''
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
if cfg["cgroup"]:
    with open(cfg["cgroup"] + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
if cfg["netns"] and ctypes.CDLL(None, use_errno=True).unshare(cfg["netns"]) != 0:
    sys.exit("sandbox: unshare failed: " + os.strerror(ctypes.get_errno()))
for name, value in cfg["rlimits"]:
    resource.setrlimit(getattr(resource, name), (value, value))
os.execv(sys.executable, [sys.executable, "-I", "-S", "-B", *cfg["argv"]])
'''


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: int = 5
    wall_s: float = 10.0
    memory_mb: int = 512  # address space; CPython itself needs about 30 MB
    nproc: int = 16
    fsize_mb: int = 8  # any file written, stdout included
    nofile: int = 64
    guard: bool = True  # the interpreter guard (layer 5); off only to test the OS layers alone


@dataclass
class RunResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool


@functools.lru_cache(maxsize=1)
def _netns_flags() -> int | None:
    """The unshare flags that give a child its own network namespace here, or None."""
    candidates = [CLONE_NEWNET] if os.geteuid() == 0 else []
    candidates.append(CLONE_NEWUSER | CLONE_NEWNET)
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None, use_errno=True).unshare(int(sys.argv[1])) != 0)"
    for flags in candidates:
        try:
            r = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(flags)], capture_output=True,
                               timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return flags
    return None


@functools.lru_cache(maxsize=1)
def _pids_cgroup_root() -> Path | None:
    """A writable cgroup folder whose children get a `pids.max` (root only: NPROC exempts root)."""
    if os.geteuid() != 0:
        return None
    for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        probe = root / f"distill-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        ok = (probe / "pids.max").exists()
        probe.rmdir()
        if ok:
            return root
    return None


def isolation() -> dict:
    """What the sandbox can enforce on this machine, for reports and warnings."""
    flags = _netns_flags()
    if os.geteuid() != 0:
        processes = "RLIMIT_NPROC"
    else:
        processes = "pids cgroup" if _pids_cgroup_root() else "interpreter guard only (root is exempt from RLIMIT_NPROC)"
    return {
        "network": {CLONE_NEWNET: "network namespace", CLONE_NEWUSER | CLONE_NEWNET: "user+network namespace",
                    None: "NOT isolated by the kernel (unshare refused); interpreter guard only"}[flags],
        "processes": processes,
        "filesystem": "temporary working dir; writes elsewhere blocked by the interpreter guard and file permissions",
        "environment": "scrubbed (PATH, LANG, HOME)",
        "limits": "RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0, wall timeout",
    }


def _trampoline_cfg(limits: SandboxLimits, cgroup: Path | None, argv: list[str]) -> str:
    mb = 1024 * 1024
    rlimits = [("RLIMIT_CPU", limits.cpu_s), ("RLIMIT_AS", limits.memory_mb * mb), ("RLIMIT_NPROC", limits.nproc),
               ("RLIMIT_FSIZE", limits.fsize_mb * mb), ("RLIMIT_NOFILE", limits.nofile), ("RLIMIT_CORE", 0)]
    return json.dumps({"cgroup": str(cgroup) if cgroup else None, "netns": _netns_flags(), "rlimits": rlimits,
                       "argv": argv})


def _make_cgroup(limits: SandboxLimits) -> Path | None:
    root = _pids_cgroup_root()
    if root is None:
        return None
    path = root / f"distill-sandbox-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(limits.nproc))
        return path
    except OSError:
        return None


def _kill_all(proc: subprocess.Popen, cgroup: Path | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:  # processes that left the group (setsid) are still in the cgroup
        for _ in range(50):
            pids = (cgroup / "cgroup.procs").read_text().split()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass


def _remove_cgroup(cgroup: Path) -> None:
    # Killed children are reaped by init a moment later; the folder only goes once they have.
    for _ in range(100):
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def run_program(code: str, stdin: str = "", limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Run a Python program in the sandbox; never raises for anything the program does."""
    work = Path(tempfile.mkdtemp(prefix="distill-run-"))
    cgroup = _make_cgroup(limits)
    try:
        (work / "main.py").write_text(code, encoding="utf-8")
        script = ["-c", GUARD] if limits.guard else ["main.py"]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work), "PYTHONIOENCODING": "utf-8"}
        with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
            fin.write(stdin.encode("utf-8"))
            fin.seek(0)
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", TRAMPOLINE, _trampoline_cfg(limits, cgroup, script)],
                cwd=work, env=env, stdin=fin, stdout=fout, stderr=ferr, start_new_session=True, close_fds=True)
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_all(proc, cgroup)  # children it left behind die with it either way
            proc.wait()
            cap = limits.fsize_mb * 1024 * 1024
            fout.seek(0)
            ferr.seek(0)
            out = fout.read(cap).decode("utf-8", errors="replace")
            err = ferr.read(64 * 1024).decode("utf-8", errors="replace")
        return RunResult(proc.returncode, out, err, timed_out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if cgroup is not None:
            _remove_cgroup(cgroup)


def _same_output(got: str, want: str) -> bool:
    """Outputs match up to trailing whitespace on each line and trailing blank lines."""
    def norm(s: str) -> str:
        return "\n".join(line.rstrip() for line in s.strip("\n").splitlines()).strip()

    return norm(got) == norm(want)


def passes_tests(code: str, tests: list, limits: SandboxLimits = SandboxLimits()) -> bool:
    """True when the program exits 0 with the expected stdout on every test (stops at the first miss)."""
    for t in tests:
        t_in, t_out = (t["input"], t["output"]) if isinstance(t, dict) else (t.input, t.output)
        r = run_program(code, t_in, limits)
        if r.timed_out or r.returncode != 0 or not _same_output(r.stdout, t_out):
            return False
    return True
