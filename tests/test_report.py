from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from run_folder import make_run

from distill import report
from distill.runs import RunData, accuracy_rows


def _colour_share(png: Path, hex_colour: str, tol: int = 40) -> float:
    """Share of the image's pixels close to `hex_colour` (the data's own colour, not axes or text)."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    want = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(rgb - want).sum(axis=2) < tol).mean())


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path)


def test_figures_draw_the_runs_data(run):
    d = RunData(run)
    figs = report.figures(d)
    assert all(figs[name] is not None for name in report.FIGURES)

    funnel, reasons = figs["funnel"].axes
    assert sorted(p.get_width() for p in funnel.patches) == [5, 5, 15]  # 5 problems, 15 traces, 5 accepted
    assert {t.get_text() for t in reasons.get_yticklabels()} >= {"wrong_answer", "unclosed_think"}
    assert sum(p.get_width() for p in reasons.patches) == sum(d.filter_report["by_reason"].values())

    hist = figs["lengths"].axes[0]
    assert sum(p.get_height() for p in hist.patches) == 15  # every trace counted once

    line, held_out = figs["loss"].axes[0].get_lines()
    assert list(line.get_ydata()) == [2.1, 1.4, 0.9, 0.6] and list(line.get_xdata()) == [2, 4, 6, 8]
    assert list(held_out.get_xdata()) == [8] and list(held_out.get_ydata()) == [0.75]  # after the last step

    acc = figs["accuracy"].axes[0]
    assert [round(p.get_height(), 6) for p in acc.patches] == [10.0, 30.0, 30.0, 25.0]
    assert [t.get_text() for t in acc.get_xticklabels()] == ["base", "student", "F16", "Q4_K_M"]
    # Error bars: one vertical segment per bar, ± one standard error around its height (none for F16,
    # whose manifest entry has no standard error).
    from matplotlib.container import BarContainer

    bars = next(c for c in acc.containers if isinstance(c, BarContainer))
    segments = bars.errorbar.lines[2][0].get_segments()
    spans = [(round(s[0][1], 2), round(s[1][1], 2)) for s in segments]
    assert spans == [(5.26, 14.74), (22.75, 37.25), (30.0, 30.0), (18.15, 31.85)]
    assert "25.0% ± 6.9%" in [t.get_text() for t in acc.texts]

    curve = figs["budget"].axes[0].get_lines()[0]
    assert list(curve.get_xdata()) == [16, 32, 64] and list(curve.get_ydata()) == [10.0, 20.0, 30.0]

    time_ax = figs["time"].axes[0]
    assert sorted(p.get_width() for p in time_ax.patches) == [0.1, 0.5, 30.0, 45.0, 60.0, 120.0]
    assert any("$0.42" in t.get_text() for t in time_ax.texts)


def test_build_writes_report_figures_and_html(run):
    md = report.build(run)
    assert md == run / "report.md"
    text = md.read_text()
    for name in report.FIGURES:
        png = run / "figures" / f"{name}.png"
        assert f"](figures/{name}.png)" in text
        with Image.open(png) as im:
            im.verify()  # a valid PNG
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] > 300
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 20
    # Data drawn, not an empty axis: the series' own colours cover part of each figure.
    assert _colour_share(run / "figures" / "accuracy.png", report.ORANGE) > 0.005
    assert _colour_share(run / "figures" / "funnel.png", report.GREY) > 0.005
    assert _colour_share(run / "figures" / "loss.png", report.BLUE) > 0.001
    assert _colour_share(run / "figures" / "budget.png", report.ORANGE) > 0.001
    assert "| student | student | 40 | 30.0% ± 7.2% | 5.0% | 80.0% | 61.0 | 40.5 |" in text
    assert "| quant | Q4_K_M |  | 25.0% ± 6.9% (-5.0 ± 3.5 points vs F16) |" in text
    # Examples dropped for length are shown, not hidden: training never truncates them.
    assert "| 8 | 10 | 2 | 1 | 2.100 → 0.600 | 0.750 |" in text
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(report.FIGURES) and "<table>" in html


def test_missing_parts_are_left_out_and_stale_figures_removed(run):
    report.build(run)
    (run / "eval" / "budgets.json").unlink()
    (run / "train_summary.json").unlink()
    text = report.build(run).read_text()
    assert not (run / "figures" / "budget.png").exists() and not (run / "figures" / "loss.png").exists()
    assert "budget.png" not in text and (run / "figures" / "funnel.png").exists()


def test_bars_scored_on_fewer_problems_say_how_many():
    rows = [{"label": "base", "problems": 100}, {"label": "student", "problems": 504},
            {"label": "Q8_0", "problems": 40}, {"label": "round 1", "problems": ""}]
    assert report.bar_names(rows) == ["base\n100 problems", "student", "Q8_0\n40 problems", "round 1"]


def test_accuracy_rows_take_quants_from_the_export_manifest(run):
    rows = accuracy_rows(RunData(run))
    assert [(r["stage"], r["label"], r["pass@1"]) for r in rows] == [
        ("base", "base", 0.1), ("student", "student", 0.3), ("quant", "F16", 0.3), ("quant", "Q4_K_M", 0.25)]
