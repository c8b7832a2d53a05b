"""`faceedit bench` as users run it: a subprocess against the session's real Triton, inpainter and orchestrator."""

from __future__ import annotations

import json
from pathlib import Path

from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.triton import TritonServer
from tests.helpers import run_faceedit

SMALL = ("--steps", "2", "--size", "96")


def _levels(out: Path) -> list[dict]:
    report = json.loads((out / "bench.json").read_text())
    for level in report["levels"]:
        assert level["ok"] + sum(level["errors"].values()) == level["sent"]
    return report["levels"]


def test_closed_loop_sweep_writes_table_json_csv_and_plots(editor_stack: ServiceProcess, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = run_faceedit(
        "bench", "--server", editor_stack.address, "--concurrency", "1,2", "--requests", "3", "--warmup", "1",
        *SMALL, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "p50" in result.stdout and "ovh p50" in result.stdout and "denoise" in result.stdout
    assert "bench editface" in result.stderr  # the progress bar
    report = json.loads((out / "bench.json").read_text())
    assert report["target"] == "editface" and report["mode"] == "closed" and report["warmup"] == 1
    levels = _levels(out)
    assert [lv["concurrency"] for lv in levels] == [1, 2]
    for level in levels:
        assert level["sent"] == 3 == level["ok"] and level["errors"] == {} and level["throughput_rps"] > 0
        assert 1 <= level["max_in_flight"] <= level["concurrency"]
        latency = level["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
        stages = level["stages_ms"]
        assert {"decode", "parse", "mask", "inpaint", "denoise", "composite", "encode", "total"} <= set(stages)
        assert stages["denoise"] <= stages["inpaint"] <= stages["total"] <= latency["max"]
        overhead = level["overhead_ms"]  # per request: end to end - (parse + denoise + composite) > 0
        assert 0 < overhead["p50"] <= overhead["max"] < latency["max"]
    rows = (out / "bench.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("concurrency,mode")
    for name in ("latency_vs_concurrency.png", "stage_breakdown.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_open_loop_counts_add_up(editor_stack: ServiceProcess, tmp_path: Path) -> None:
    result = run_faceedit(
        "bench", "--server", editor_stack.address, "--rate", "4", "--fixed-interval", "--requests", "3",
        "--warmup", "0", *SMALL, "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (level,) = _levels(tmp_path)
    assert level["mode"] == "open" and level["rate"] == 4 and level["sent"] == 3 == level["ok"]
    assert json.loads((tmp_path / "bench.json").read_text())["arrivals"] == "fixed"


def test_failures_are_counted_by_grpc_status(editor_stack: ServiceProcess, tmp_path: Path) -> None:
    # The server refuses an unknown attribute before any work, so every request fails fast and the same way.
    result = run_faceedit(
        "bench", "--server", editor_stack.address, "-e", "tail=fluffy", "--concurrency", "2", "--requests", "4",
        "--warmup", "0", *SMALL, "--out", str(tmp_path),
    )  # fmt: skip
    (level,) = _levels(tmp_path)
    assert result.returncode == 1 and "INVALID_ARGUMENT:4" in result.stdout, result.stdout + result.stderr
    assert level["ok"] == 0 and level["sent"] == 4 and level["errors"] == {"INVALID_ARGUMENT": 4}


def test_parser_target_reports_tritons_own_stage_times(triton_server: TritonServer, tmp_path: Path) -> None:
    result = run_faceedit(
        "bench", "--target", "parser", "--server", triton_server.grpc_url, "--parser-size", "128",
        "--concurrency", "1,2", "--requests", "4", "--warmup", "1", "--size", "96", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for level in _levels(tmp_path):
        assert level["ok"] == 4 and level["overhead_ms"] is None
        assert {"queue", "compute_infer"} <= set(level["stages_ms"]) and level["stages_ms"]["compute_infer"] > 0
        assert level["stages_ms"]["compute_infer"] < level["latency_ms"]["max"]


def test_inpainter_target(inpainter_server: ServiceProcess, tmp_path: Path) -> None:
    result = run_faceedit(
        "bench", "--target", "inpainter", "--server", inpainter_server.address, "--concurrency", "1",
        "--requests", "2", "--warmup", "0", *SMALL, "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (level,) = _levels(tmp_path)
    assert level["ok"] == 2 and level["stages_ms"]["denoise"] > 0 and "parse" not in level["stages_ms"]
    assert 0 < level["overhead_ms"]["p50"] < level["latency_ms"]["p50"]  # transfer and framing around the denoise


def test_compare_overhead_against_a_running_stack(editor_stack: ServiceProcess, tmp_path: Path) -> None:
    result = run_faceedit(
        "bench", "compare", "overhead", "--server", editor_stack.address, "--requests", "2", "--size", "96",
        "--steps", "2", "--format", "jpeg", "--input-format", "jpeg", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "overhead p50" in result.stdout
    report = json.loads((tmp_path / "overhead.json").read_text())
    assert report["comparison"] == "overhead" and report["errors"] == {}
    assert report["output_format"] == report["input_format"] == "jpeg" and "96x96 jpeg -> jpeg" in result.stdout
    assert 0 < report["overhead_p50_ms"] < report["e2e_p50_ms"]
    assert report["overhead_fraction"] == report["overhead_p50_ms"] / report["e2e_p50_ms"]
    # The configuration is printed with the result (a running server: its own working size), and progress shown.
    assert "2 steps, the server's working size, 2 sequential requests after 2 warm-up" in result.stdout
    assert report["overhead_definition"] == "end to end minus (parse + queue + denoise), p50"
    assert "compare overhead" in result.stderr and "2/2" in result.stderr


def test_bench_against_nothing_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = run_faceedit("bench", "--server", f"127.0.0.1:{free_port()}", "--requests", "1", "--out", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("faceedit: UNAVAILABLE: "), result.stderr
