"""Overhead has one definition (faceedit.bench.stats.overhead_ms), used by `bench` and `compare overhead` alike."""

from __future__ import annotations

import pytest

from faceedit.bench.loadgen import Level
from faceedit.bench.report import table
from faceedit.bench.stats import NOT_OVERHEAD, overhead_ms


def test_overhead_is_end_to_end_minus_the_models_and_the_queue() -> None:
    stages = {"decode": 2.0, "parse": 10.0, "mask": 1.0, "queue": 5.0, "denoise": 60.0, "composite": 4.0}
    # decode, mask and composite are faceedit's own work: they stay in.
    assert overhead_ms(100.0, stages) == pytest.approx(25.0)
    assert NOT_OVERHEAD == ("parse", "queue", "denoise")


def test_bench_summary_and_its_table_use_that_definition() -> None:
    level = Level(1, "closed", latencies_ms=[100.0], stages=[{"parse": 10.0, "denoise": 60.0, "composite": 4.0}])
    level.duration_s = 1.0
    summary = level.summary()
    assert summary["overhead_ms"]["p50"] == pytest.approx(30.0)
    footnote = table([summary]).splitlines()[-1]
    assert "end to end minus (parse + queue + denoise)" in footnote and "composite" not in footnote
