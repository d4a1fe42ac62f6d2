"""The judge's hands inside the jail: compile a trace's program once, run it on every test, report.

Runs under the system `python3` with the standard library only (the package is not visible in the
jail), as PID 1 of the jail's own PID namespace, so after each test it kills every process the
program left behind (`kill(-1)` from PID 1 reaches the whole namespace and nothing outside it).
Expected outputs never enter the jail: this file reports what the program printed or returned,
and the judge outside compares (`distill/filter/code_tests.py`).

    python3 -I jail_runner.py < job.json     # JSON lines out: {"ready"}, {"compile"} (C++), one per test

Job: {"language": "python" | "cpp", "code", "box" (the writable work dir), "tests": [{"input",
"fn_name", "args", "max_output"}], "time_limit_s", "wall_s", "memory_mb", "nproc", "fsize_mb",
"compile_s", "compile_memory_mb", "cxxflags"}. Per test it reports exit status, CPU and wall
seconds, whether the wall limit hit, stdout (at most `max_output` bytes) and the tail of stderr.

Python programs run as `python3 main.py` would, in a child forked from this warm interpreter (no
second interpreter start per test): `__name__ == "__main__"`, `exit()` and `sys.exit` work, stdin
and stdout are ordinary files, the recursion limit is raised as competitive judges do. C++ is
compiled once with `g++ -O2` (with a precompiled <bits/stdc++.h> where one was built) and the
binary is executed per test.
"""

from __future__ import annotations

import json
import math
import os
import resource
import select
import shutil
import signal
import stat
import sys
import time

MB = 1024 * 1024
RECURSION_LIMIT = 10**6  # with the stack limit below, deep recursive solutions work as on Codeforces
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": ".", "TMPDIR": "."}


def _emit(fd: int, obj: dict) -> None:
    os.write(fd, (json.dumps(obj) + "\n").encode())


def _limit(name: str, value: float) -> None:
    value = int(value)
    resource.setrlimit(getattr(resource, name), (value, value))


def _enter_child(stdin: str, stdout: str, stderr: str, cpu_s: float, memory_mb: int, nproc: int,
                 fsize_mb: int) -> None:
    """In a fresh child: its own files on 0/1/2, nothing else open, the limits of one run."""
    for fd, path, flags in ((0, stdin, os.O_RDONLY), (1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        new = os.open(path, flags, 0o600)
        os.dup2(new, fd)
        os.close(new)
    os.closerange(3, 4096)
    os.setpgid(0, 0)
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    _limit("RLIMIT_CPU", math.ceil(cpu_s) + 1)  # a backstop: the verdict uses the measured CPU time
    _limit("RLIMIT_AS", memory_mb * MB)
    _limit("RLIMIT_STACK", memory_mb * MB)  # as Codeforces: the stack may use the whole memory limit
    _limit("RLIMIT_NPROC", nproc)  # counted inside the jail's user namespace: this jail only
    _limit("RLIMIT_FSIZE", fsize_mb * MB)
    _limit("RLIMIT_NOFILE", 64)
    _limit("RLIMIT_CORE", 0)


def _python_main(code: str, box: str) -> int:
    """Run the program as `python3 main.py` would; returns its exit status."""
    import builtins
    import traceback
    import types

    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False,
                                       buffering=1)
    sys.argv = ["main.py"]
    sys.path[0:0] = [box]
    sys.setrecursionlimit(RECURSION_LIMIT)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=os.path.join(box, "main.py"), __builtins__=builtins)
    sys.modules["__main__"] = main
    status = 0
    try:
        exec(compile(code, "main.py", "exec"), main.__dict__)
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException as e:  # noqa: BLE001 -- the program's own error, reported as python would
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # without this runner's frame
        status = 1
    return _finish(status)


def _python_call(code: str, fn_name: str, args: list) -> int:
    """Call-based test (TACO/APPS `fn_name`): define the program, call the function, print its
    return value as JSON on stdout. What the program prints itself is discarded."""
    import traceback
    import types

    real_out = os.dup(1)
    sys.stdout = sys.__stdout__ = open(os.devnull, "w")
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.setrecursionlimit(RECURSION_LIMIT)
    module = types.ModuleType("solution")
    try:
        exec(compile(code, "main.py", "exec"), module.__dict__)
        fn = getattr(module, fn_name, None)
        if fn is None and isinstance(getattr(module, "Solution", None), type):  # LeetCode style
            fn = getattr(module.Solution(), fn_name)
        result = fn(*args)
        text = json.dumps(result, default=_jsonable)
    except SystemExit as e:
        return _finish(_exit_status(e.code) or 1)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return _finish(1)
    os.write(real_out, text.encode())
    return _finish(0)


def _jsonable(value):
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(status: int) -> int:
    """What interpreter shutdown does that os._exit skips: wait for threads, atexit, flush."""
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 -- a flush that fails (file size limit) is exit 120, as in CPython
        return 120
    return status


def _wait(pid: int, wall_s: float) -> tuple[int, float, float, bool]:
    """Wait for `pid` at most `wall_s`; (status as subprocess reports it, CPU s, wall s, timed out)."""
    start = time.monotonic()
    timed_out = False
    try:
        pidfd = os.pidfd_open(pid)
        ready = select.select([pidfd], [], [], wall_s)[0]
        os.close(pidfd)
        timed_out = not ready
    except (AttributeError, OSError):  # no pidfd (old kernel): poll without reaping
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() - start > wall_s:
                timed_out = True
                break
            time.sleep(0.002)
    if timed_out:
        os.killpg(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return code, usage.ru_utime + usage.ru_stime, wall, timed_out


def _clean_up(pid: int) -> None:
    """Kill whatever the run left behind (a `setsid` child, a fork storm) and reap it."""
    if os.getpid() == 1:  # PID 1 of the jail: -1 is every other process in this namespace
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
    else:  # unsafe-local: only the run's own process group can be reached
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _read_own_file(path: str, n: int, tail: bool = False) -> bytes:
    """Up to n bytes of a file the program may have replaced: never follow a link, never block on
    a FIFO; anything but a regular file reads as empty (the program only spoils its own verdict)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b""
        if tail:
            f.seek(max(0, st.st_size - n))
        return f.read(n)


def _tail(path: str, n: int) -> str:
    return _read_own_file(path, n, tail=True).decode("utf-8", errors="replace")


def _run_one(job: dict, test: dict, run) -> dict:
    for name in (".in", ".out", ".err"):  # whatever the last run left under these names
        if os.path.lexists(name):
            os.unlink(name) if not os.path.isdir(name) or os.path.islink(name) else shutil.rmtree(name)
    with open(".in", "x", encoding="utf-8") as f:
        f.write(test["input"] if not test.get("fn_name") else "")
    pid = os.fork()
    if pid == 0:  # the child: never returns into this loop
        status = 1
        try:
            _enter_child(".in", ".out", ".err", job["time_limit_s"], job["memory_mb"], job["nproc"], job["fsize_mb"])
            status = run(test)
        finally:
            os._exit(status)
    code, cpu, wall, timed_out = _wait(pid, job["wall_s"])
    _clean_up(pid)
    cap = test["max_output"]
    out = _read_own_file(".out", cap + 1)
    return {"exit": code, "cpu_s": round(cpu, 4), "wall_s": round(wall, 4), "timed_out": timed_out,
            "stdout": out[:cap].decode("utf-8", errors="replace"), "truncated": len(out) > cap,
            "stderr": _tail(".err", 2000)}


def _compile(job: dict) -> dict:
    pid = os.fork()
    if pid == 0:
        try:
            _enter_child(os.devnull, ".cc.out", ".cc.err", job["compile_s"], job["compile_memory_mb"], 64, 256)
            gxx = "/usr/bin/g++" if os.path.exists("/usr/bin/g++") else "/usr/local/bin/g++"
            os.execve(gxx, ["g++", *job["cxxflags"], "-o", "main", "main.cpp"], ENV)
        finally:
            os._exit(127)
    code, cpu, wall, timed_out = _wait(pid, 2 * job["compile_s"] + 5)
    _clean_up(pid)
    return {"compile": code == 0 and not timed_out, "exit": code, "cpu_s": round(cpu, 3),
            "timed_out": timed_out, "stderr": _tail(".cc.err", 4000)}


def main() -> None:
    out = os.dup(1)  # results go here; every child closes it
    job = json.loads(sys.stdin.buffer.read())
    os.chdir(job["box"])
    _emit(out, {"ready": True, "pid1": os.getpid() == 1})
    if job["language"] == "cpp":
        with open("main.cpp", "w", encoding="utf-8") as f:
            f.write(job["code"])
        built = _compile(job)
        _emit(out, built)
        if not built["compile"]:
            return

        def run(test):
            os.execve("./main", ["./main"], ENV)
    else:
        with open("main.py", "w", encoding="utf-8") as f:
            f.write(job["code"])

        def run(test):
            if test.get("fn_name"):
                return _python_call(job["code"], test["fn_name"], test["args"])
            return _python_main(job["code"], job["box"])
    for i, test in enumerate(job["tests"]):
        _emit(out, {"i": i, **_run_one(job, test, run)})


if __name__ == "__main__":
    main()
