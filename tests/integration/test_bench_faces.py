"""`faceedit compare faces` at a small size, as a subprocess with its own stack (real Triton serving the palette
parser, the tiny inpainter, the orchestrator): the table and JSON's shape, and numbers that only real calls give
(Triton's counters, the server's stage timings, the render regions the orchestrator reported)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from faceedit.devstack.triton import default_triton_venv
from tests.helpers import FACEEDIT

CANVAS = 128


def test_compare_faces_measures_both_sides_on_real_calls(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "models").symlink_to(models_dir)  # the session's tiny inpainter, where the stack looks for it
    env = {**os.environ, "FACEEDIT_TRITON_VENV": str(default_triton_venv())}
    argv = [
        "compare", "faces", "--photo", "800x600", "--group-photo", "1200x800", "--requests", "2", "--steps", "2",
        "--working-size", str(CANVAS), "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    result = subprocess.run([*FACEEDIT, *argv], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out" / "faces.json").read_text())
    assert report["comparison"] == "faces" and report["canvas"] == CANVAS

    overhead = report["overhead"]
    for side in ("face_aware", "whole_frame"):
        row = overhead[side]
        assert row["errors"] == {}
        assert 0 < row["overhead_p50_ms"] < row["e2e_p50_ms"]
        assert row["stages_ms"]["parse"] > 0 and row["stages_ms"]["denoise"] > 0  # the server timed real work
        # Triton counted each edit's requests: the whole-photo parse, then the one face frame's.
        assert row["parser_requests_per_edit"] == 2 and row["parser_images_per_edit"] == 2
        assert f"800x600 lips, {side:11s}: overhead p50" in result.stdout
    assert overhead["added_ms"] == pytest.approx(
        overhead["face_aware"]["overhead_p50_ms"] - overhead["whole_frame"]["overhead_p50_ms"]
    )

    detail = report["detail"]
    faces = detail["face_aware"]["regions"]
    assert [r["face"] for r in faces] == [0, 1, 2]  # numbered by area, largest first
    sides = [r["side_px"] for r in faces]
    assert sides == sorted(sides, reverse=True)  # smaller faces, smaller lips crops
    for region in faces:
        x0, y0, x1, y1 = region["box"]
        assert 0 <= x0 < x1 <= 1200 and 0 <= y0 < y1 <= 800 and max(x1 - x0, y1 - y0) == region["side_px"]
        assert region["detail_gain"] == pytest.approx((CANVAS / region["side_px"]) ** 2)
    (whole,) = detail["whole_frame"]["regions"]
    assert whole["face"] == 0 and whole["side_px"] > max(sides)  # the one "face" (the photo): one region, all lips
    assert all(gain > 1 for gain in detail["gain_vs_whole_frame"])

    # One batched request per step, holding every face: 3 images in 1 request, and the one whole-photo parse.
    assert detail["face_aware"]["parser_requests"] == 2 and detail["face_aware"]["parser_images"] == 4
    assert report["parser"] == {"first_parse_requests": 1, "requests_per_step": 1, "images_per_step": 3, "faces": 3}
    assert "parser per step: 1 request(s) holding 3 images for 3 faces" in result.stdout
