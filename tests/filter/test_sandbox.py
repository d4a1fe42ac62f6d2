"""Escape attempts against the code jail, judged by the real `distill filter` in a subprocess.

Each attack is a code answer that prints the right answer only if its attack worked, and that
leaves a mark outside the jail (a file in tmp_path, bytes at a loopback listener, a process still
running) if it did. All must be rejected, nothing outside may change, every trace gets a verdict
and the filter finishes. The filter runs with a teacher key and a hub token in its environment.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from distill.filter import jail

pytestmark = pytest.mark.skipif(jail.unavailable() is not None, reason=f"no jail here: {jail.unavailable()}")

SUM = [{"input": "2 3\n", "output": "5\n"}]


def attacks(mark: str, secret_file: str, port: int, tag: str) -> dict[str, tuple[str, list]]:
    """name -> (program, tests). `mark` is a host path the jail must never create."""
    shell_mark = f"echo pwned > {mark}"
    return {
        "fork_exec": (f"""
import _posixsubprocess, os
r, w = os.pipe()
args = [b"/bin/sh", b"-c", {shell_mark.encode()!r}]
common = (args, [b"/bin/sh"], True, (w,), None, None, -1, -1, -1, -1, -1, -1, r, w, False, False, -1,
          None, None, None, -1, None)
try:
    pid = _posixsubprocess.fork_exec(*common, False)
except TypeError:
    pid = _posixsubprocess.fork_exec(*common)
_, status = os.waitpid(pid, 0)
print(5 if status == 0 else "failed")
""", SUM),
        "ctypes_system": (f"""
import ctypes
rc = ctypes.CDLL(None).system({shell_mark.encode()!r})
print(5 if rc == 0 else rc)
""", SUM),
        "os_system": (f"import os\nrc = os.system({shell_mark!r})\nprint(5 if rc == 0 else rc)", SUM),
        "write_outside": (f"open({mark!r}, 'w').write('pwned')\nprint(5)", SUM),
        "write_through_proc_root": (f"""
import os
for pid in os.listdir('/proc'):
    try:
        open(f'/proc/{{pid}}/root{mark}', 'w').write('pwned')
        print(5)
        break
    except OSError:
        pass
""", SUM),
        "symlink_outside": (f"import os\nos.symlink({mark!r}, 'link')\nopen('link', 'w').write('pwned')\nprint(5)", SUM),
        "read_secret_file": (f"print(open({secret_file!r}).read())", SUM),
        "proc_environ": ("""
import os
found = None
pids = [str(os.getppid()), "1", "self"] + [p for p in os.listdir('/proc') if p.isdigit()]
for pid in pids:
    try:
        env = open(f'/proc/{pid}/environ', 'rb').read()
    except OSError:
        continue
    for kv in env.split(b'\\0'):
        name, _, value = kv.partition(b'=')
        if name in (b'HF_TOKEN', b'OPENAI_API_KEY'):
            found = value.decode()
print(found)
""", SUM),
        "loopback_tcp": (f"""
import socket
s = socket.create_connection(('127.0.0.1', {port}), timeout=2)
s.sendall(b'leak')
print(5)
""", SUM),
        # Run 1 leaves a setsid survivor that would write run 2's answer into run 2's stdout file
        # (same work dir) and, later, a mark outside; run 2 itself prints nothing.
        "setsid_survivor": (f"""
import os, time
if os.path.exists('flag'):
    time.sleep(0.6)
else:
    open('flag', 'w').close()
    if os.fork() == 0:
        os.setsid()
        loop = 'i=0; while [ $i -lt 60 ]; do echo 5 > .out; sleep 0.05; i=$((i+1)); done; {shell_mark}'
        os.execv('/bin/sh', ['sh', '-c', loop, {tag!r}])
    print(5)
""", SUM + SUM),
        "fork_storm": ("""
import os, time
n = 0
for _ in range(3000):
    try:
        pid = os.fork()
    except OSError:
        continue
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
print(5 if n >= 1000 else n)
""", SUM),
        "allocate_6gb": ("x = bytearray(6 * 1024 ** 3)\nx[-1] = 1\nprint(5)", SUM),
        "infinite_loop": ("while True:\n    pass", SUM),
        "kill_the_parent": ("""
import os, signal, time
ppid = os.getppid()
for pid in [ppid, 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
time.sleep(0.2)
try:
    os.kill(ppid, 0)
    print("parent alive")
except ProcessLookupError:
    print(5)
""", SUM),
    }


GOOD = {
    "python_exit": ("import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\nexit()", SUM, "python"),
    "cpp": ("#include <bits/stdc++.h>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}", SUM, "cpp"),
}


def _trace(pid: str, program: str, tests: list, lang: str = "python") -> dict:
    # The problem text differs per trace (the program itself), so none is dropped as a duplicate.
    return {"problem_id": pid, "sample_index": 0, "problem": f"Print the sum of two integers. {pid}: {program}",
            "answer": "", "domain": "code", "teacher": "r1", "finish_reason": "stop", "tests": tests,
            "time_limit_s": 1, "memory_mb": 256,
            "completion": f"<think>\nAdd them.\n</think>\n\n```{lang}\n{program.strip()}\n```"}


@pytest.fixture
def listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    got: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            got.append(conn.recv(100))
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with socket.create_connection(srv.getsockname()) as c:  # the listener works: this process is seen
        c.sendall(b"probe")
    for _ in range(50):
        if got:
            break
        stop.wait(0.05)
    assert got == [b"probe"]
    yield srv.getsockname()[1], got
    stop.set()
    t.join()
    srv.close()


def _tagged_processes(tag: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if tag.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def test_every_escape_is_rejected_and_leaves_no_mark(tmp_path, listener):
    port, got = listener
    mark = tmp_path / "escaped"
    secret = tmp_path / "secret.txt"
    secret.write_text("5\n")
    tag = f"distill-survivor-{uuid.uuid4().hex}"
    bad = attacks(str(mark), str(secret), port, tag)
    rows = [_trace(f"attack-{name}", prog, tests) for name, (prog, tests) in bad.items()]
    rows += [_trace(f"good-{name}", prog, tests, lang) for name, (prog, tests, lang) in GOOD.items()]
    rows.append({"problem_id": "m1", "sample_index": 0, "problem": "What is 2+3?", "answer": "5", "domain": "math",
                 "teacher": "r1", "finish_reason": "stop", "completion": "2+3=5\n</think>\n\n\\boxed{5}"})
    src = tmp_path / "traces.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "HF_TOKEN": "5", "OPENAI_API_KEY": "5", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "distill", "filter", str(src), "--out", str(tmp_path / "out"),
                           "--workers", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "code jail: bubblewrap" in proc.stdout + proc.stderr

    verdicts = {}
    for f in ("accepted.jsonl", "rejected.jsonl"):
        for line in (tmp_path / "out" / f).read_text().splitlines():
            row = json.loads(line)
            verdicts[row["problem_id"]] = row["verdict"]
    assert len(verdicts) == len(rows)  # a verdict for every trace
    for name in bad:
        assert verdicts[f"attack-{name}"] == {"accepted": False, "reasons": ["tests_failed"]}, name
    for name in GOOD:
        assert verdicts[f"good-{name}"]["accepted"], name  # the jail does not break honest programs
    assert verdicts["m1"]["accepted"]

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["sandbox"]["in_force"] is True and report["sandbox"]["mode"] == "bwrap"
    assert "PID namespace" in report["sandbox"]["processes"]

    assert _tagged_processes(tag) == []  # the setsid survivor died with its jail
    time.sleep(3.5)  # it would have written its mark by now
    assert not mark.exists()
    assert got == [b"probe"]  # nothing from a jail reached the loopback listener
    assert secret.read_text() == "5\n"
