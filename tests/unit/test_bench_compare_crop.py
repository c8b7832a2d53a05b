"""`faceedit bench compare crop` in process on the tiny pipeline: the three sides render where the canvas rules
say, and the detail gain is the region's pixels in the render per pixel in the input."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceedit.bench.compare import CROP_SIDES, run_crop_comparison

pytestmark = pytest.mark.slow  # runs the tiny SDXL pipeline


def test_crop_comparison_reports_latency_and_detail_gain_of_each_side(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_crop_comparison(
        size=1024, working_size=256, steps=1, repeats=1, pipeline="tiny", workdir=tmp_path, log=lines.append
    )
    sides = result["sides"]
    assert tuple(sides) == CROP_SIDES
    # The lips box is 186 px square (122 px wide plus 32 px padding each side).
    assert (sides["crop"]["canvas"], sides["crop"]["cropped"]) == (256, True)  # native: the working size
    assert (sides["crop-fast"]["canvas"], sides["crop-fast"]["cropped"]) == (192, True)  # smallest bucket >= 186
    assert (sides["full"]["canvas"], sides["full"]["cropped"]) == (256, False)
    assert sides["crop"]["detail_gain"] == pytest.approx((256 / 186) ** 2)
    assert sides["crop-fast"]["detail_gain"] == pytest.approx((192 / 186) ** 2)
    assert sides["full"]["detail_gain"] == pytest.approx((256 / 1024) ** 2)
    assert all(row["ms"] > 0 for row in sides.values()) and sides["full"]["speedup_vs_full"] == 1.0
    assert result["ratio"] == pytest.approx(result["full_ms"] / result["crop_ms"])
    assert any("detail gain" in line for line in lines)
