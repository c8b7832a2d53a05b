"""InpaintRequest -> engine Job: every documented default applied, every range checked (INVALID_ARGUMENT)."""

from __future__ import annotations

from faceedit.core.errors import InvalidOptionError
from faceedit.core.imageio import DEFAULT_MAX_PIXELS
from faceedit.core.knobs import check_prompts, check_range, resolve_knobs
from faceedit.core.prompts import negative_prompt
from faceedit.core.taxonomy import ATTRIBUTES, resolve_classes
from faceedit.inpainter.engine import Job
from faceedit.rpc.messages import FRAME_MODES, from_raw, optional
from faceedit.v1 import inpainter_pb2

MAX_PREVIEW = 512


def job_from_request(request: inpainter_pb2.InpaintRequest) -> Job:
    pixels = request.image.width * request.image.height
    if pixels > DEFAULT_MAX_PIXELS:
        raise InvalidOptionError(f"image is {pixels} pixels; the limit is {DEFAULT_MAX_PIXELS}")
    image = from_raw(request.image, channels=3, name="image")
    mask = from_raw(request.mask, channels=1, name="mask")
    if image.shape[:2] != mask.shape:
        raise InvalidOptionError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}; "
            "they must match"
        )
    prompt = check_prompts(request.prompt, request.negative_prompt)
    attribute = request.attribute.strip().lower()
    if attribute and attribute not in ATTRIBUTES:
        resolve_classes(attribute)  # raises UnknownNameError listing the valid attributes
    options = request.options
    knobs = resolve_knobs(
        attribute,
        strength=optional(request, "strength"),
        guidance_scale=optional(request, "guidance_scale"),
        steps=optional(request, "num_inference_steps"),
        seed=optional(request, "seed"),
        crop_padding=optional(options, "crop_padding"),
    )
    check_range("preview_size", request.preview_size, 0, MAX_PREVIEW)
    if options.crop_mode not in FRAME_MODES:
        raise InvalidOptionError(f"unknown crop_mode {options.crop_mode}")
    return Job(
        image=image,
        mask=mask,
        prompt=prompt,
        negative_prompt=negative_prompt(
            attribute, request.prompt, request.negative_prompt, raw=options.raw_negative_prompt
        ),
        strength=knobs.strength,
        guidance_scale=knobs.guidance_scale,
        steps=knobs.steps,
        seed=knobs.seed,
        crop_mode=FRAME_MODES[options.crop_mode],
        crop_padding=knobs.crop_padding,
        color_match=options.color_match,
        preview_size=int(request.preview_size),
        precropped=request.precropped,
        blend=not request.skip_composite,
    )
