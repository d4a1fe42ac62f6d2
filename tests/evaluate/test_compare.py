import pytest
from run_folder import make_run
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import DistillError
from distill.evaluate.compare import compare


def test_compare_two_runs_in_one_table(tmp_path):
    make_run(tmp_path, "before", student_pass=0.3)
    make_run(tmp_path, "after", student_pass=0.45, losses=(2.0, 1.0, 0.5))
    headers, rows = compare("before", "after")  # recipe names resolve to data/runs/<name>
    assert headers == ["metric", "before", "after", "B - A"]
    table = {r[0]: r[1:] for r in rows}
    assert table["pass@1 student"] == ["0.3", "0.45", "+0.15"]
    assert table["pass@1 Q4_K_M"] == ["0.25", "0.25", "+0"]
    assert table["pass@1 at budget 64"] == ["0.3", "0.45", "+0.15"]
    assert table["last loss"] == ["0.6", "0.5", "-0.1"]
    assert table["cost USD sample"][2] == "+0"

    out = CliRunner().invoke(app, ["compare", "data/runs/before", "data/runs/after"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "pass@1 student" in out.output and "+0.15" in out.output


def test_compare_needs_runs(tmp_path):
    make_run(tmp_path, "only")
    with pytest.raises(DistillError, match="no run found"):
        compare("only", "nothing-here")
