"""Where an edit renders: which part of the photo (a padded crop around the region, or the whole frame), how that
part travels to the inpainter bounded by its canvas, the square canvas it renders at, and the way back.

Pure geometry, the one place that decides framing. The orchestrator plans the frame on the caller's
full-resolution mask and sends only that region (downsampled when larger than the inpainter's canvas), so no
Inpaint message grows with the photo; it pastes the render back at full resolution. The inpainter renders what
it receives on its square canvas (and frames whole images itself for callers that send them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from faceedit.core.composite import color_match, composite
from faceedit.core.geometry import Letterbox, letterbox, resize, unletterbox
from faceedit.core.masks import bounding_box

# Crop when the padded box covers at most this share of the image: lips, eyes, brows, nose and earrings (0.2-5% of
# a portrait) then get the model's whole canvas for a few hundred pixels, so more detail. Hair, skin or clothing
# boxes span most of the face; cropping them gains little and loses the global context the model needs for
# coherent lighting.
AUTO_CROP_MAX_AREA = 0.25
FRAME_MODES = ("auto", "crop", "full")


@dataclass(frozen=True)
class Frame:
    """The part of an image that renders: box (x0, y0, x1, y1, half-open) and whether it is a crop."""

    box: tuple[int, int, int, int]
    cropped: bool

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def whole(image: np.ndarray, *, cropped: bool = False) -> Frame:
    """The whole image as the frame (cropped=True: it already is a crop cut out of a larger photo)."""
    return Frame((0, 0, image.shape[1], image.shape[0]), cropped)


def plan_frame(mask: np.ndarray, mode: str, *, padding: int) -> Frame:
    """mode "auto" crops to the mask's padded square box when it covers at most AUTO_CROP_MAX_AREA of the image,
    "crop" always does, "full" never does; an empty mask renders the whole frame."""
    if mode not in FRAME_MODES:
        raise ValueError(f"frame mode must be one of {FRAME_MODES}, got {mode!r}")
    if mode == "full":
        return whole(mask)
    height, width = mask.shape
    box = bounding_box(mask, padding=padding, square=True)
    if box is None:
        return whole(mask)
    x0, y0, x1, y1 = box
    if mode == "auto" and (x1 - x0) * (y1 - y0) > AUTO_CROP_MAX_AREA * width * height:
        return whole(mask)
    return Frame(box, True)


def travel_size(frame: Frame, max_side: int) -> tuple[int, int]:
    """(width, height) the frame's pixels travel at: its own size, scaled down (aspect kept) to fit a
    max_side square when larger. The inpainter renders at most max_side, so larger would only cost bytes."""
    scale = min(1.0, max_side / max(frame.width, frame.height))
    return max(1, round(frame.width * scale)), max(1, round(frame.height * scale))


def cut_region(image: np.ndarray, frame: Frame, max_side: int) -> np.ndarray:
    """The frame's pixels of image ((H,W,3) photo or (H,W) mask) at travel_size (area-averaged when shrunk)."""
    x0, y0, x1, y1 = frame.box
    return resize(image[y0:y1, x0:x1], *travel_size(frame, max_side))


def paste_region(photo: np.ndarray, rendered: np.ndarray, mask: np.ndarray, frame: Frame) -> np.ndarray:
    """photo with the rendered frame (any size; resized to the box) blended in through mask at full resolution.

    A new array; pixels where mask == 0 are photo's, bit for bit. mask must be 0 outside the box (a frame
    planned from that mask always covers it)."""
    x0, y0, x1, y1 = frame.box
    out = photo.copy()
    generated = resize(rendered, frame.width, frame.height)
    out[y0:y1, x0:x1] = composite(photo[y0:y1, x0:x1], generated, mask[y0:y1, x0:x1])
    return out


def _round_up(value: int, multiple: int = 64) -> int:
    return int(math.ceil(value / multiple) * multiple)


def canvas_size(frame: Frame, *, working_size: int, min_crop_size: int) -> int:
    """The square canvas the pipeline renders a frame at: the working size for a whole frame; for a crop its
    longer side rounded up to 64, clamped to [min_crop_size, working_size]."""
    if not frame.cropped:
        return working_size
    return min(working_size, max(min_crop_size, _round_up(max(frame.width, frame.height))))


def canvas_inputs(
    image: np.ndarray, mask: np.ndarray, frame: Frame, canvas: int
) -> tuple[np.ndarray, np.ndarray, Letterbox]:
    """The square RGB canvas and mask canvas the pipeline sees, and how to map its output back."""
    x0, y0, x1, y1 = frame.box
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    region_mask = np.ascontiguousarray(mask[y0:y1, x0:x1])
    canvas_image, placement = letterbox(region, canvas)
    mask_canvas, _ = letterbox(region_mask, canvas, fill=0)
    return canvas_image, mask_canvas, placement


def paste_back(
    original: np.ndarray,
    generated: np.ndarray,
    mask: np.ndarray,
    frame: Frame,
    placement: Letterbox,
    *,
    match_colors: bool = False,
    blend: bool = True,
) -> np.ndarray:
    """The generated canvas mapped back into the image it came from. blend=True: through the soft mask, so pixels
    where mask == 0 are the original's, bit for bit. blend=False: the raw render inside the frame (colour-matched
    when asked) for a caller that blends itself at a higher resolution."""
    x0, y0, x1, y1 = frame.box
    full = original.copy()
    full[y0:y1, x0:x1] = unletterbox(generated, placement)
    if match_colors:
        full = color_match(full, original, mask)
    return composite(original, full, mask) if blend else full
