"""`faceedit bench soak`, short: rounds of 16-caller overload on a real local stack; memory must settle, not grow."""

from __future__ import annotations

import json
from pathlib import Path

from faceedit.bench.soak import growth
from tests.helpers import run_faceedit


def test_memory_does_not_grow_under_repeated_overload(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak"
    result = run_faceedit(
        "bench", "soak", "--rounds", "4", "--round-seconds", "6", "--concurrency", "16", "--size", "512",
        "--steps", "4", "--models-dir", str(models_dir), "--working-size", "128", "--parser-size", "128",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rounds = json.loads((out / "soak.json").read_text())["rounds"]
    assert len(rounds) == 4
    for row in rounds:
        assert row["errors"].get("RESOURCE_EXHAUSTED", 0) > 0  # really overloaded: refusals in every round
        assert row["health_ms"]["p50"] > 0 and row["health_failures"] == 0  # health answered throughout
    assert sum(row["ok"] for row in rounds) > 0  # and admitted work still completed
    for server in ("orchestrator", "inpainter"):
        assert abs(growth(rounds, server)) <= 0.10, (server, [row["rss_mb"] for row in rounds])
