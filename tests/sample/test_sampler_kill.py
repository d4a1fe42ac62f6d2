"""A sampler PROCESS (`distill sample`) killed with SIGKILL at three points and rerun: the traces
end as exactly the expected set, with no duplicates and no torn records."""

import json
import signal
import subprocess
import sys
import time

from standin import StandInR1

from distill.records import BadLine, Trace, read_records

N_PROBLEMS, N = 20, 2


def _lines(path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _run_until(cmd, cwd, traces, at_least: int | None, timeout=90) -> int | None:
    """Start the sampler; SIGKILL it once `traces` holds `at_least` lines (None: let it finish)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
            return None
        if at_least is not None and _lines(traces) >= at_least:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return _lines(traces)
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("the sampler did not finish in time")


def test_sigkill_at_three_points_then_rerun_gives_exactly_the_expected_samples(tmp_path):
    problems = [{"id": f"k{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1), "split": "train"}
                for i in range(N_PROBLEMS)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    answers = {p["problem"]: p["answer"] for p in problems}
    traces = tmp_path / "data/runs/kill/traces.jsonl"
    total = N_PROBLEMS * N
    with StandInR1(answers, delay_s=0.15) as server:
        (tmp_path / "kill.yaml").write_text(f"""
name: kill
student: {{model: x, chat_template: chatml}}
teacher: {{backend: openai, model: stand-in-r1, base_urls: ["{server.url}"]}}
problems: {{path: p.jsonl, split: train}}
sampling: {{n: {N}, max_tokens: 16, max_concurrent: 3, timeout_s: 10}}
eval: {{problems: p.jsonl}}
""")
        cmd = [sys.executable, "-m", "distill", "sample", "kill.yaml"]
        killed_at = [_run_until(cmd, tmp_path, traces, k) for k in (1, total // 2, total - 4)]
        assert all(k is not None for k in killed_at), f"a run finished before its kill point: {killed_at}"
        assert killed_at[0] < total // 2 <= killed_at[1] < total - 4 <= killed_at[2] < total
        assert _run_until(cmd, tmp_path, traces, None) is None
        served = server.posts  # chat requests (each run also asks /v1/models once)
    recs = list(read_records(traces, Trace))
    assert not [r for r in recs if isinstance(r, BadLine)]
    keys = [r.key for r in recs]
    assert len(keys) == len(set(keys)) == total
    assert sorted(keys) == sorted((p["id"], j) for p in problems for j in range(N))
    assert traces.read_bytes().endswith(b"\n")
    # Each kill loses at most the requests in flight (3), which the next run asks again.
    assert total <= served <= total + 3 * 3
