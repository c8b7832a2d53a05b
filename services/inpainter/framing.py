"""Where the inpainter generates: the whole frame, or a crop around the region ("inpaint only masked").

Pure geometry: the pipeline only ever sees a square canvas; these functions build it and put its pixels back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from faceedit.core.composite import color_match, composite
from faceedit.core.geometry import Letterbox, letterbox, unletterbox
from faceedit.core.masks import bounding_box

# Crop when the padded box covers at most this share of the image: lips, eyes, brows, nose and earrings (0.2-5% of
# a portrait) then get the model's full canvas for a few hundred pixels, so more detail, and a canvas far smaller
# than the working size, so far less compute. Hair, skin or clothing boxes span most of the face; cropping them
# saves little and loses the global context the model needs for coherent lighting.
AUTO_CROP_MAX_AREA = 0.25


@dataclass(frozen=True)
class Frame:
    """The region of the caller's image the pipeline renders, and the square canvas size it renders at."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the caller's image
    canvas: int
    cropped: bool


def _round_up(value: int, multiple: int = 64) -> int:
    return int(math.ceil(value / multiple) * multiple)


def plan_frame(mask: np.ndarray, mode: str, *, padding: int, working_size: int, min_crop_size: int) -> Frame:
    """mode: "auto", "crop" or "full". A crop renders at its own size rounded up to 64, clamped to
    [min_crop_size, working_size]; the full frame renders at working_size."""
    height, width = mask.shape
    full = Frame((0, 0, width, height), working_size, False)
    box = bounding_box(mask, padding=padding, square=True)
    if box is None or mode == "full":
        return full
    x0, y0, x1, y1 = box
    if mode == "auto" and (x1 - x0) * (y1 - y0) > AUTO_CROP_MAX_AREA * width * height:
        return full
    canvas = min(working_size, max(min_crop_size, _round_up(max(x1 - x0, y1 - y0))))
    return Frame(box, canvas, True)


def canvas_inputs(image: np.ndarray, mask: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray, Letterbox]:
    """The square RGB canvas and mask canvas the pipeline sees, and how to map its output back."""
    x0, y0, x1, y1 = frame.box
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    region_mask = np.ascontiguousarray(mask[y0:y1, x0:x1])
    canvas, placement = letterbox(region, frame.canvas)
    mask_canvas, _ = letterbox(region_mask, frame.canvas, fill=0)
    return canvas, mask_canvas, placement


def paste_back(
    original: np.ndarray,
    generated: np.ndarray,
    mask: np.ndarray,
    frame: Frame,
    placement: Letterbox,
    *,
    match_colors: bool = False,
) -> np.ndarray:
    """The generated canvas mapped back into the caller's image through the soft mask: pixels where mask == 0 are
    the original's, bit for bit."""
    x0, y0, x1, y1 = frame.box
    full = original.copy()
    full[y0:y1, x0:x1] = unletterbox(generated, placement)
    if match_colors:
        full = color_match(full, original, mask)
    return composite(original, full, mask)
