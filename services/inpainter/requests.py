"""InpaintRequest -> engine Job: every documented default applied, every range checked (INVALID_ARGUMENT)."""

from __future__ import annotations

import numpy as np

from faceedit.core.errors import InvalidOptionError
from faceedit.core.prompts import negative_prompt
from faceedit.core.taxonomy import ATTRIBUTES, default_strength, resolve_classes
from faceedit.inpainter.engine import Job
from faceedit.rawimage import from_raw
from faceedit.v1 import inpainter_pb2, types_pb2

DEFAULT_GUIDANCE = 12.0
DEFAULT_STEPS = 50
DEFAULT_SEED = 42
DEFAULT_CROP_PADDING = 32
MAX_STEPS = 150
MAX_GUIDANCE = 30.0
MAX_CROP_PADDING = 1024
MAX_PREVIEW = 512
MAX_PIXELS = 40_000_000
CROP_MODES = {
    types_pb2.CROP_MODE_UNSPECIFIED: "auto",
    types_pb2.CROP_MODE_CROP: "crop",
    types_pb2.CROP_MODE_FULL_FRAME: "full",
}


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    below = value <= low if low_open else value < low
    if below or value > high or not np.isfinite(value):
        bracket = "(" if low_open else "["
        raise InvalidOptionError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value:g}")


def job_from_request(request: inpainter_pb2.InpaintRequest) -> Job:
    if request.image.width * request.image.height > MAX_PIXELS:
        raise InvalidOptionError(f"image has more than {MAX_PIXELS} pixels")
    image = from_raw(request.image, channels=3, name="image")
    mask = from_raw(request.mask, channels=1, name="mask")
    if image.shape[:2] != mask.shape:
        raise InvalidOptionError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}; "
            "they must match"
        )
    if not request.prompt.strip():
        raise InvalidOptionError("prompt is required: describe what the masked region should become")
    attribute = request.attribute.strip().lower()
    if attribute and attribute not in ATTRIBUTES:
        resolve_classes(attribute)  # raises UnknownNameError listing the valid attributes
    strength = request.strength if request.HasField("strength") else default_strength(attribute)
    guidance = request.guidance_scale if request.HasField("guidance_scale") else DEFAULT_GUIDANCE
    steps = request.num_inference_steps if request.HasField("num_inference_steps") else DEFAULT_STEPS
    _check_range("strength", strength, 0.0, 1.0, low_open=True)
    _check_range("guidance_scale", guidance, 0.0, MAX_GUIDANCE)
    _check_range("num_inference_steps", steps, 1, MAX_STEPS)
    if int(steps * strength) < 1:
        raise InvalidOptionError(
            f"strength {strength:g} x num_inference_steps {steps} leaves no denoising step; raise either"
        )
    options = request.options
    padding = options.crop_padding if options.HasField("crop_padding") else DEFAULT_CROP_PADDING
    _check_range("options.crop_padding", padding, 0, MAX_CROP_PADDING)
    _check_range("preview_size", request.preview_size, 0, MAX_PREVIEW)
    if options.crop_mode not in CROP_MODES:
        raise InvalidOptionError(f"unknown crop_mode {options.crop_mode}")
    return Job(
        image=image,
        mask=mask,
        prompt=request.prompt.strip(),
        negative_prompt=negative_prompt(
            attribute, request.prompt, request.negative_prompt, raw=options.raw_negative_prompt
        ),
        strength=float(strength),
        guidance_scale=float(guidance),
        steps=int(steps),
        seed=request.seed if request.HasField("seed") else DEFAULT_SEED,
        crop_mode=CROP_MODES[options.crop_mode],
        crop_padding=int(padding),
        color_match=options.color_match,
        preview_size=int(request.preview_size),
    )
