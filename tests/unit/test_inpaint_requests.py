"""InpaintRequest validation: documented defaults, and INVALID_ARGUMENT-class errors that say what to fix."""

from __future__ import annotations

import numpy as np
import pytest

from faceedit.core.errors import FaceEditError, InvalidOptionError, UnknownNameError
from faceedit.inpainter.requests import job_from_request
from faceedit.rpc.messages import to_raw
from faceedit.v1 import inpainter_pb2, types_pb2


def _request(**overrides) -> inpainter_pb2.InpaintRequest:
    fields = {
        "image": to_raw(np.zeros((20, 30, 3), np.uint8)),
        "mask": to_raw(np.zeros((20, 30), np.uint8)),
        "prompt": "matte dusty-rose lipstick",
        "attribute": "lips",
    }
    fields.update(overrides)
    return inpainter_pb2.InpaintRequest(**fields)


def test_defaults_follow_the_thesis() -> None:
    job = job_from_request(_request())
    assert (job.strength, job.guidance_scale, job.steps, job.seed) == (pytest.approx(0.9), 12.0, 50, 42)
    assert (job.crop_mode, job.crop_padding, job.color_match) == ("auto", 32, False)
    assert "smeared lipstick" in job.negative_prompt and job.negative_prompt.endswith("malformed")
    assert job_from_request(_request(attribute="eyebrows")).strength == pytest.approx(0.6)


def test_explicit_values_and_raw_negative_prompt() -> None:
    job = job_from_request(
        _request(
            strength=0.5,
            guidance_scale=7.5,
            num_inference_steps=20,
            seed=7,
            negative_prompt="teeth",
            options=types_pb2.InpaintOptions(crop_mode=types_pb2.CROP_MODE_FULL_FRAME, raw_negative_prompt=True),
        )
    )
    assert (job.strength, job.guidance_scale, job.steps, job.seed, job.crop_mode) == (0.5, 7.5, 20, 7, "full")
    assert job.negative_prompt == "teeth"


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"mask": to_raw(np.zeros((10, 30), np.uint8))}, "mask is 30x10 but the image is 30x20"),
        ({"mask": to_raw(np.zeros((20, 30, 3), np.uint8))}, "mask: expected 1 channel"),
        ({"image": types_pb2.RawImage(width=30, height=20, channels=3, pixels=b"x")}, "needs 1800 bytes, got 1"),
        ({"prompt": "   "}, "prompt is required"),
        ({"num_inference_steps": 0}, r"num_inference_steps must be in \[1, 150\], got 0"),
        ({"num_inference_steps": 10000}, r"num_inference_steps must be in \[1, 150\], got 10000"),
        ({"strength": 0.0}, r"strength must be in \(0, 1\], got 0"),
        ({"strength": 1.5}, r"strength must be in \(0, 1\], got 1.5"),
        ({"guidance_scale": -1.0}, "guidance_scale must be in"),
        ({"strength": 0.1, "num_inference_steps": 5}, "leaves no denoising step"),
        ({"options": types_pb2.InpaintOptions(crop_padding=5000)}, "crop_padding must be in"),
    ],
)
def test_malformed_requests(overrides: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        job_from_request(_request(**overrides))


def test_unknown_attribute_lists_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="Valid attributes: hair, lips") as excinfo:
        job_from_request(_request(attribute="lipz"))
    assert isinstance(excinfo.value, FaceEditError)
