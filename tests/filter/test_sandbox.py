"""Hostile code answers: each attack is contained and the trace ends as `tests_failed`."""

import os
import socket
import threading

import pytest

from distill.filter import judging as trace_filter
from distill.filter.sandbox import SandboxLimits, isolation, passes_tests, run_program
from distill.recipe import FilterCfg
from distill.records import Trace

TESTS = [{"input": "2 3\n", "output": "5\n"}]
FAST = SandboxLimits(cpu_s=1, wall_s=3)


def judge_code(program: str) -> list[str]:
    completion = f"<think>\nI will just do this.\n</think>\n\n```python\n{program}\n```"
    trace = Trace(problem_id="c1", sample_index=0, problem="Read two integers and print their sum.",
                  answer="", domain="code", teacher="r1", completion=completion, finish_reason="stop", tests=TESTS)
    return trace_filter.judge(trace, FilterCfg(code_cpu_s=1, code_wall_s=3))


def test_a_correct_program_passes_and_a_wrong_one_fails():
    assert run_program("print(sum(map(int, input().split())))", "2 3\n").stdout == "5\n"
    assert judge_code("a, b = map(int, input().split())\nprint(a + b)") == []
    assert judge_code("print(6)") == ["tests_failed"]
    assert judge_code("raise SystemExit(3)") == ["tests_failed"]


def test_fork_bomb():
    assert judge_code("import os\nwhile True:\n    os.fork()") == ["tests_failed"]
    r = run_program("import os\nos.fork()\nprint('forked')", limits=FAST)
    assert "forked" not in r.stdout and "os.fork is not allowed" in r.stderr


def test_fork_bomb_without_the_interpreter_guard_hits_the_process_cap():
    if "guard only" in isolation()["processes"]:
        pytest.skip(f"no OS process cap here: {isolation()['processes']}")
    limits = SandboxLimits(cpu_s=2, wall_s=5, nproc=8, guard=False)
    program = ("import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
               "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
               "    n += 1\nprint(n, flush=True)\n")
    r = run_program(program, limits=limits)
    assert int(r.stdout.split()[0]) < 8  # the cap stopped it; the sleeping children were killed with it


def test_memory_bomb():
    assert judge_code("x = bytearray(8 * 1024 ** 3)\nprint(5)") == ["tests_failed"]
    r = run_program("blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 1024 * 1024))",
                    limits=SandboxLimits(memory_mb=256))
    assert r.returncode != 0 and "MemoryError" in r.stderr


def test_infinite_loops():
    assert judge_code("while True:\n    pass") == ["tests_failed"]
    busy = run_program("while True:\n    pass", limits=FAST)
    assert busy.returncode == -9 or busy.timed_out  # RLIMIT_CPU kills it
    asleep = run_program("import time\ntime.sleep(3600)", limits=SandboxLimits(wall_s=1))
    assert asleep.timed_out  # no CPU used: the wall timeout ends it


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
    # The listener works: a connection from this process is seen.
    with socket.create_connection(srv.getsockname()) as c:
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


def test_network_connection_to_a_loopback_listener(listener):
    port, got = listener
    program = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
               "s.sendall(b'leak')\nprint(5)")
    assert judge_code(program) == ["tests_failed"]
    if isolation()["network"].startswith("NOT"):
        pytest.skip("the kernel refuses network namespaces here: only the interpreter guard stops sockets")
    r = run_program(program, limits=SandboxLimits(wall_s=5, guard=False))  # the namespace alone
    assert r.returncode != 0 and "unreachable" in r.stderr.lower()
    assert got == [b"probe"]  # nothing from the sandbox ever arrived


def test_write_outside_the_work_dir(tmp_path):
    target = tmp_path / "outside.txt"
    program = f"open({str(target)!r}, 'w').write('pwned')\nprint(5)"
    assert judge_code(program) == ["tests_failed"]
    assert not target.exists()
    r = run_program("open('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())")
    assert r.stdout == "ok\n"  # its own working dir is writable


def test_read_of_an_env_secret(monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_SECRET", "5")  # the program would pass if it could read it
    program = "import os\nprint(os.environ.get('DISTILL_TEST_SECRET'))"
    assert judge_code(program) == ["tests_failed"]
    assert run_program(program).stdout == "None\n"
    assert "DISTILL_TEST_SECRET" not in run_program("import os\nprint(dict(os.environ))").stdout


def test_output_flood_is_capped():
    r = run_program("while True:\n    print('x' * 1000)", limits=SandboxLimits(wall_s=3, fsize_mb=1))
    assert r.returncode != 0 and len(r.stdout) <= 1024 * 1024


def test_no_files_left_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert passes_tests("a, b = map(int, input().split())\nprint(a + b)", TESTS)
    assert not any(p.name.startswith("distill-run-") for p in tmp_path.iterdir())
    assert os.path.isdir(tmp_path)
