"""gpu-check's runner and output: the JSON is rewritten after each case, a failing case keeps the others' figures,
the budget skips what would start too late, and the table says why a case has no figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceedit.bench import gpu_check
from faceedit.bench.gpu_check import TINY, Settings, run


def _settings(cases: tuple[str, ...], budget_s: float = 0.0) -> Settings:
    return Settings(
        tiny=True, device="cpu", size=TINY["size"], steps=2, runs=2, photo=TINY["photo"], requests=2,
        batches=TINY["batches"], parser_runs=2, compile_backend="eager", compile_mode=None, parser_server="standin",
        cases=cases, budget_s=budget_s, max_case_s=10.0,
    )  # fmt: skip


def test_each_case_is_saved_as_it_ends_and_a_failure_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict] = []

    def first(ctx, row: dict) -> None:
        row.update(ratio=1.01, peak_vram_mb=None)

    def broken(ctx, row: dict) -> None:
        seen.append(json.loads((tmp_path / "gpu-check.json").read_text()))  # what a cut-short run would return
        row["partial"] = 3.0
        ctx.save()
        raise RuntimeError("CUDA out of memory")

    def last(ctx, row: dict) -> None:
        row["peak_vram_mb"] = None

    monkeypatch.setattr(gpu_check, "CASES", {"first": first, "broken": broken, "last": last})
    result = run(_settings(("first", "broken", "last")), tmp_path, tmp_path / "work", command="faceedit gpu-check")
    assert seen[0]["cases"]["first"] == {**seen[0]["cases"]["first"], "status": "ok", "ratio": 1.01}
    assert seen[0]["cases"]["broken"]["status"] == "running" and seen[0]["cases"]["last"]["status"] == "pending"
    saved = json.loads((tmp_path / "gpu-check.json").read_text())
    assert saved["cases"] == json.loads(json.dumps(result["cases"]))
    broken_row = saved["cases"]["broken"]
    assert broken_row["status"] == "error" and broken_row["error"] == "RuntimeError: CUDA out of memory"
    assert broken_row["partial"] == 3.0 and "Traceback" in broken_row["traceback"]
    assert saved["cases"]["last"]["status"] == "ok" and saved["command"] == "faceedit gpu-check"
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| broken | status | error: RuntimeError: CUDA out of memory |" in table
    assert "| first | peak VRAM (this process) | n/a |" in table


def test_budget_skips_cases_that_would_start_too_late(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(gpu_check.time, "monotonic", lambda: now[0])
    ran: list[str] = []

    def slow(ctx, row: dict) -> None:
        ran.append("a")
        now[0] += 200  # the case takes 200 s

    monkeypatch.setattr(gpu_check, "CASES", {"a": slow, "b": lambda ctx, row: ran.append("b")})
    result = run(_settings(("a", "b"), budget_s=100), tmp_path, tmp_path / "work", command="x")
    assert ran == ["a"]
    assert result["cases"]["b"]["status"] == "skipped" and "budget" in result["cases"]["b"]["reason"]
    assert "| b | status | skipped: budget:" in (tmp_path / "gpu-check.md").read_text()
