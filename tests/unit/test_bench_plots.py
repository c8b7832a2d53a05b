"""The bench plots: p99 and max stay distinguishable where they coincide, and the stage breakdown gives every
stage, however small, its own labelled bar."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from faceedit.bench import report


def _level(concurrency: int, queue: float) -> dict:
    stages = {"decode": 1.2, "parse": 45.0, "mask": 2.5, "queue": queue, "denoise": 1800.0, "composite": 3.1}
    return {
        "concurrency": concurrency, "mode": "closed", "rate": None, "throughput_rps": 0.5,
        "latency_ms": {"p50": 1900.0, "p95": 2000.0, "p99": 2100.0, "max": 2100.0, "mean": 2000.0 + queue},
        "stages_ms": {**stages, "encode": 4.0, "inpaint": 1850.0, "total": 1990.0},
    }  # fmt: skip


def test_p99_and_max_have_their_own_line_and_marker() -> None:
    styles = report.PERCENTILE_STYLES
    assert len({s["linestyle"] for s in styles.values()}) == len({s["marker"] for s in styles.values()}) == 4
    assert styles["p99"]["markerfacecolor"] == "none"  # hollow: a max marker on top leaves it visible


def test_breakdown_has_each_stage_in_request_order_plus_other_and_end_to_end() -> None:
    rows = report.breakdown([_level(1, 0.2), _level(2, 1800.0)])
    assert list(rows) == ["decode", "parse", "mask", "queue", "denoise", "composite", "encode", "other", "end to end"]
    assert rows["decode"] == [1.2, 1.2] and rows["end to end"] == [2000.2, 3800.0]
    assert rows["other"][0] == pytest.approx(2000.2 - (1.2 + 45.0 + 2.5 + 0.2 + 1800.0 + 3.1 + 4.0))


def test_small_stages_are_labelled_on_a_log_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figures to look at them
    report.write_plots([_level(1, 0.2), _level(2, 1800.0)], tmp_path, "t")
    monkeypatch.undo()
    ax = figures[1].axes[0]
    assert ax.get_xscale() == "log"
    labels = {text.get_text() for text in ax.texts}
    assert {"1.2 ms", "2.5 ms", "3.1 ms", "4.0 ms", "0.20 ms", "1800 ms"} <= labels
    for figure in figures:
        close(figure)
