"""Judging code answers: a trace's program runs on its tests in a jail, and the judge compares.

    j = judge_code("print(sum(map(int, input().split())))", "python", [{"input": "2 3", "output": "5"}],
                   CodeLimits(time_limit_s=2))            # j.passed, j.detail
    run_program("print(input())", "hi\\n").stdout          # one run, as the tests use it
    isolation("bwrap")                                     # what is in force, for the report

One jail per trace (`jail.py`: bubblewrap with user, PID and network namespaces, read-only /usr, a
fresh tmpfs work dir). Inside it, `jail_runner.py` compiles C++ once and runs every test in a fresh
child, streaming one result line per test; the judge compares each as it arrives
(`code_tests.py`) and ends the jail at the first failure, as the benchmarks stop. Expected outputs
never enter the jail. A test fails on a non-zero exit, more CPU time than the problem's limit, the
wall limit (sleepers), or output that differs.

Where the jail cannot start, code judging raises `JailUnavailable` (the trace is rejected as
`code_jail_unavailable`) unless the recipe opts out with `filter.code_sandbox: unsafe-local`: the
same runner then runs as a plain process (rlimits, a temporary dir, an empty environment, as uid
65534 when root) -- no boundary against a hostile program.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import DistillError
from distill.filter import jail
from distill.filter.code_tests import call_args, same_return, same_stdout

STARTUP_S = 5.0  # jail and interpreter start, on a loaded machine


class JailUnavailable(DistillError):
    """Code judging refused: no jail here and no explicit opt-out."""


@dataclass(frozen=True)
class CodeLimits:
    time_limit_s: float = 5.0  # CPU seconds per test (the problem's own `time_limit_s` where it has one)
    wall_s: float = 10.0  # per test, for programs that sleep or block (at least 3x the CPU limit + 1 s)
    memory_mb: int = 512  # address space per run (the problem's own `memory_mb` where it has one)
    nproc: int = 16  # processes in the jail at once
    fsize_mb: int = 8  # any file written, stdout included
    compile_s: float = 30.0  # g++ -O2, CPU seconds
    compile_memory_mb: int = 2048
    sandbox: str = "bwrap"  # or "unsafe-local": no jail (the explicit opt-out)

    @property
    def test_wall_s(self) -> float:
        # Generous on purpose: CPU time decides the time limit, and on a loaded machine a program
        # gets a fraction of a core. A sleeper costs this once: judging stops at the first failure.
        return max(self.wall_s, 3 * self.time_limit_s + 1)


def code_limits(cfg, time_limit_s: float | None = None, memory_mb: int | None = None) -> CodeLimits:
    """The limits for one trace: the problem's own time and memory limits over the recipe's defaults."""
    return CodeLimits(time_limit_s=time_limit_s or cfg.code_cpu_s, wall_s=cfg.code_wall_s,
                      memory_mb=memory_mb or cfg.code_memory_mb, sandbox=cfg.code_sandbox)


def deadline_s(n_tests: int, limits: CodeLimits) -> float:
    """The most judging one trace can take: start, compile, every test at its wall limit."""
    return STARTUP_S + 2 * limits.compile_s + 5 + n_tests * (limits.test_wall_s + 0.5)


@dataclass
class RunResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    cpu_s: float = 0.0


@dataclass
class Judgement:
    passed: bool
    detail: str  # why not, for logs: "test 3: wrong output", "compile error: ..."
    runs: list[dict] = field(default_factory=list)


@functools.lru_cache(maxsize=1)
def _runner_source() -> str:
    return (Path(__file__).parent / "jail_runner.py").read_text(encoding="utf-8")


def _job(code: str, language: str, tests: list[dict], limits: CodeLimits, box: str) -> dict:
    items = []
    for t in tests:
        want = len(t.get("output", "").encode("utf-8"))
        item = {"input": t.get("input", ""), "max_output": t.get("max_output", 2 * want + 4096)}
        if t.get("fn_name"):
            item.update(fn_name=t["fn_name"], args=call_args(t.get("input", "")))
        items.append(item)
    return {"language": language, "code": code, "box": box, "tests": items,
            "time_limit_s": limits.time_limit_s, "wall_s": limits.test_wall_s, "memory_mb": limits.memory_mb,
            "nproc": limits.nproc, "fsize_mb": limits.fsize_mb, "compile_s": limits.compile_s,
            "compile_memory_mb": limits.compile_memory_mb, "cxxflags": jail.cxxflags(jailed=box == jail.BOX)}


def _start(job: dict, limits: CodeLimits, work: Path | None) -> subprocess.Popen:
    python = jail.jail_python()
    if python is None:
        raise JailUnavailable("no python3 under /usr to run the judge's runner; `apt-get install python3`")
    runner = [python, "-I", "-c", _runner_source()]
    stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty bwrap can never block on it
    common = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, close_fds=True, **jail.run_as())
    if work is None:
        largest = max((len(t["input"]) for t in job["tests"]), default=0)
        proc = subprocess.Popen(jail.jail_argv(jail.box_mb(largest, limits.fsize_mb)) + runner, env={}, **common)
    else:  # unsafe-local: the same runner, no jail
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work), "TMPDIR": str(work)}
        proc = subprocess.Popen(runner, cwd=work, env=env, start_new_session=True, **common)
    proc.stderr_file = stderr
    try:
        proc.stdin.write(json.dumps(job).encode("utf-8"))
        proc.stdin.close()
    except BrokenPipeError:  # it died at once; what it said is in stderr
        pass
    return proc


def _lines(proc: subprocess.Popen, deadline: float) -> Iterator[dict]:
    """Result lines from the runner as they come, until it ends or the deadline passes."""
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            for line in done:
                yield json.loads(line)


def _stop(proc: subprocess.Popen, work: Path | None) -> str:
    """End the jail (bwrap's --die-with-parent takes everything inside with it); its stderr."""
    if proc.poll() is None:
        try:
            if work is not None:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()
    proc.stdout.close()
    proc.stderr_file.seek(0)
    err = proc.stderr_file.read(8192).decode("utf-8", errors="replace")
    proc.stderr_file.close()
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return err


def run_tests(code: str, language: str, tests: list[dict], limits: CodeLimits = CodeLimits()) -> Iterator[dict]:
    """Run the program on each test in one jail; yield the runner's result dicts as they come
    ({"compile": ...} first for C++). Closing the iterator early ends the jail."""
    if limits.sandbox == "bwrap" and (why := jail.unavailable()):
        raise JailUnavailable(why)
    work = None
    if limits.sandbox == "unsafe-local":
        work = jail.unsafe_work_dir()
    job = _job(code, language, tests, limits, str(work) if work else jail.BOX)
    proc = _start(job, limits, work)
    ready = False
    try:
        for res in _lines(proc, time.monotonic() + deadline_s(len(tests), limits)):
            if res.get("ready"):
                ready = True
                continue
            yield res
    finally:
        err = _stop(proc, work)
    if not ready:  # the runner never started: a broken jail, not a wrong program
        raise JailUnavailable(f"the code jail failed to start: {err.strip() or 'no message'}")


def _test_failure(res: dict, test: dict, limits: CodeLimits) -> str | None:
    if res["timed_out"]:
        return f"over the wall limit ({limits.test_wall_s:g} s)"
    if res["cpu_s"] > limits.time_limit_s:
        return f"over the time limit ({res['cpu_s']:.2f} > {limits.time_limit_s:g} CPU s)"
    if res["exit"] != 0:
        return f"exit status {res['exit']}: {res['stderr'][-300:].strip()}"
    if res["truncated"]:
        return "output far longer than expected"
    same = same_return if test.get("fn_name") else same_stdout
    return None if same(res["stdout"], test.get("output", "")) else "wrong output"


def judge_code(code: str, language: str | None, tests: list[dict], limits: CodeLimits = CodeLimits()) -> Judgement:
    """Pass when every test passes; stops at the first failure."""
    if language not in ("python", "cpp"):
        return Judgement(False, f"cannot judge a {language or 'untagged'} code block (Python and C++ only)")
    if language == "cpp" and any(t.get("fn_name") for t in tests):
        return Judgement(False, "call-based tests need a Python answer")
    try:
        tests = [dict(t) for t in tests]
        for t in tests:
            if t.get("fn_name"):
                call_args(t.get("input", ""))
    except (ValueError, SyntaxError) as e:
        return Judgement(False, f"call-based test input is not a JSON array of arguments: {e}")
    runs: list[dict] = []
    results = run_tests(code, language, tests, limits)
    try:
        for res in results:
            runs.append(res)
            if "compile" in res:
                if not res["compile"]:
                    return Judgement(False, f"compile error: {res['stderr'][-500:].strip()}", runs)
                continue
            if why := _test_failure(res, tests[res["i"]], limits):
                return Judgement(False, f"test {res['i']}: {why}", runs)
    finally:
        results.close()
    done = sum("i" in r for r in runs)
    if done < len(tests):
        return Judgement(False, f"the jail ended after {done} of {len(tests)} tests (deadline)", runs)
    return Judgement(True, "", runs)


def passes_tests(code: str, tests: list, limits: CodeLimits = CodeLimits(), language: str = "python") -> bool:
    tests = [t if isinstance(t, dict) else t.model_dump() for t in tests]
    return judge_code(code, language, tests, limits).passed


def run_program(code: str, stdin: str = "", limits: CodeLimits = CodeLimits(), language: str = "python") -> RunResult:
    """One run of a program on `stdin` (no comparison): what it printed and how it ended."""
    for res in run_tests(code, language, [{"input": stdin, "max_output": limits.fsize_mb << 20}], limits):
        if "compile" in res and not res["compile"]:
            return RunResult(None, "", res["stderr"], res["timed_out"])
        if "i" in res:
            return RunResult(res["exit"], res["stdout"], res["stderr"], res["timed_out"], res["cpu_s"])
    return RunResult(None, "", "the jail ended without a result", True)


def isolation(mode: str = "bwrap", limits: CodeLimits = CodeLimits()) -> dict:
    """What is in force for judged programs here (report.json's `sandbox`, printed by `distill filter`)."""
    desc = (f"per test: CPU {limits.time_limit_s:g} s unless the problem sets `time_limit_s`, wall "
            f"{limits.wall_s:g} s, address space {limits.memory_mb} MiB unless it sets `memory_mb`, "
            f"{limits.nproc} processes, files {limits.fsize_mb} MiB, 64 open files, no core dumps; "
            f"compile: g++ {' '.join(jail.CXXFLAGS)}, {limits.compile_s:g} CPU s, {limits.compile_memory_mb} MiB, "
            f"precompiled <bits/stdc++.h>: {jail.pch_dir() or 'not built (make setup)'}")
    return jail.describe(mode, jail.box_mb(0, limits.fsize_mb), desc)
