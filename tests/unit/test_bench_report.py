"""The benchmark's table, stage table, CSV and plots from level summaries."""

from __future__ import annotations

import csv
from pathlib import Path

from faceedit.bench import report
from faceedit.bench.loadgen import Level


def _levels() -> list[dict]:
    levels = []
    for concurrency, latency in ((1, 100.0), (2, 180.0)):
        level = Level(concurrency, "closed", latencies_ms=[latency, latency + 10], duration_s=1.0)
        level.stages = [{"decode": 2.0, "parse": 10.0, "denoise": 60.0, "composite": 1.0, "encode": 3.0}] * 2
        level.errors["UNAVAILABLE"] = concurrency - 1
        levels.append(level.summary())
    return levels


def test_table_shows_counts_percentiles_overhead_and_errors() -> None:
    text = report.table(_levels())
    lines = text.splitlines()
    assert "p99" in lines[0] and "ovh p50" in lines[0]
    assert lines[3].split()[:6] == ["2", "-", "0", "3", "2", "1"] and "UNAVAILABLE:1" in lines[3]
    assert "35.0" in lines[2]  # overhead: 105 - (10 + 60)


def test_open_loop_rows_show_the_rate_and_in_flight_peak() -> None:
    level = Level(0, "open", rate=2.5, latencies_ms=[10.0], stages=[{}], duration_s=1.0, max_in_flight=4).summary()
    assert report.table([level]).splitlines()[2].split()[:4] == ["-", "2.5", "4", "1"]
    assert report.stage_table([{**level, "stages_ms": {"parse": 1.0}}]).splitlines()[2].split() == ["2.5/s", "1.0"]


def test_stage_table_lists_only_the_reported_stages() -> None:
    text = report.stage_table(_levels())
    header = text.splitlines()[0].split()
    assert header == ["level", "decode", "parse", "denoise", "composite", "encode"]
    assert report.stage_table([{**_levels()[0], "stages_ms": {}}]).startswith("no per-stage timings")


def test_csv_has_one_row_per_level_with_stage_columns(tmp_path: Path) -> None:
    rows = list(csv.DictReader(report.write_csv(_levels(), tmp_path / "bench.csv").open()))
    assert [r["concurrency"] for r in rows] == ["1", "2"]
    assert [r["errors"] for r in rows] == ["0", "1"] and rows[1]["sent"] == "3"
    assert float(rows[0]["denoise_ms"]) == 60.0 and float(rows[0]["p50_ms"]) == 105.0


def test_plots_are_pngs(tmp_path: Path) -> None:
    paths = report.write_plots(_levels(), tmp_path, "test")
    assert [p.name for p in paths] == ["latency_vs_concurrency.png", "stage_breakdown.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
