"""Generation knobs: the thesis's defaults and the ranges both the orchestrator and the inpainter enforce."""

from __future__ import annotations

import pytest

from faceedit.core.errors import InvalidOptionError
from faceedit.core.knobs import check_range, resolve_knobs


def test_unset_knobs_take_the_thesis_defaults() -> None:
    knobs = resolve_knobs("hair")
    assert (knobs.strength, knobs.guidance_scale, knobs.steps, knobs.seed, knobs.crop_padding) == (
        0.9,
        12.0,
        50,
        42,
        32,
    )
    assert resolve_knobs("eyebrows").strength == 0.6


def test_given_knobs_are_kept() -> None:
    knobs = resolve_knobs("eyebrows", strength=1.0, guidance_scale=0, steps=1, seed=-5, crop_padding=0)
    assert (knobs.strength, knobs.guidance_scale, knobs.steps, knobs.seed, knobs.crop_padding) == (1.0, 0, 1, -5, 0)


@pytest.mark.parametrize(
    "knobs,message",
    [
        ({"strength": 0.0}, r"strength must be in \(0, 1\], got 0"),
        ({"strength": 1.5}, r"strength must be in \(0, 1\]"),
        ({"strength": float("nan")}, "strength"),
        ({"guidance_scale": -1}, r"guidance_scale must be in \[0, 30\]"),
        ({"guidance_scale": float("inf")}, "guidance_scale"),
        ({"steps": 0}, r"num_inference_steps must be in \[1, 150\]"),
        ({"steps": 151}, "num_inference_steps"),
        ({"crop_padding": -1}, "crop_padding"),
        ({"strength": 0.05, "steps": 10}, "leaves no denoising step"),
    ],
)
def test_out_of_range_knobs_say_what_is_allowed(knobs: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        resolve_knobs("hair", **knobs)


def test_check_range_bounds() -> None:
    check_range("x", 0, 0, 1)
    check_range("x", 1, 0, 1, low_open=True)
    with pytest.raises(InvalidOptionError, match=r"x must be in \(0, 1\], got 0"):
        check_range("x", 0, 0, 1, low_open=True)
