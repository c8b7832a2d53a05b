"""InpaintRequest -> engine Job: every documented default applied, every range checked (INVALID_ARGUMENT)."""

from __future__ import annotations

from faceedit.core.errors import InvalidOptionError
from faceedit.core.knobs import check_range, resolve_knobs
from faceedit.core.prompts import negative_prompt
from faceedit.core.taxonomy import ATTRIBUTES, resolve_classes
from faceedit.inpainter.engine import Job
from faceedit.rawimage import from_raw
from faceedit.v1 import inpainter_pb2, types_pb2

MAX_PREVIEW = 512
MAX_PIXELS = 40_000_000
CROP_MODES = {
    types_pb2.CROP_MODE_UNSPECIFIED: "auto",
    types_pb2.CROP_MODE_CROP: "crop",
    types_pb2.CROP_MODE_FULL_FRAME: "full",
}


def _optional(message, name: str):
    return getattr(message, name) if message.HasField(name) else None


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
    options = request.options
    knobs = resolve_knobs(
        attribute,
        strength=_optional(request, "strength"),
        guidance_scale=_optional(request, "guidance_scale"),
        steps=_optional(request, "num_inference_steps"),
        seed=_optional(request, "seed"),
        crop_padding=_optional(options, "crop_padding"),
    )
    check_range("preview_size", request.preview_size, 0, MAX_PREVIEW)
    if options.crop_mode not in CROP_MODES:
        raise InvalidOptionError(f"unknown crop_mode {options.crop_mode}")
    return Job(
        image=image,
        mask=mask,
        prompt=request.prompt.strip(),
        negative_prompt=negative_prompt(
            attribute, request.prompt, request.negative_prompt, raw=options.raw_negative_prompt
        ),
        strength=knobs.strength,
        guidance_scale=knobs.guidance_scale,
        steps=knobs.steps,
        seed=knobs.seed,
        crop_mode=CROP_MODES[options.crop_mode],
        crop_padding=knobs.crop_padding,
        color_match=options.color_match,
        preview_size=int(request.preview_size),
    )
