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


CANVAS_MODES = ("native", "fast")
# Canvases are multiples of this: the latent is 1/8 of the image and SDXL's UNet halves it twice more.
CANVAS_MULTIPLE = 64


def native_canvas(sample_size: int, vae_scale_factor: int) -> int:
    """The square canvas a pipeline was trained at: its UNet's latent sample size times the VAE's scale factor
    (SDXL: 128 x 8 = 1024). Below it SDXL's output visibly degrades; above it, it repeats features."""
    if sample_size <= 0 or vae_scale_factor <= 0:
        raise ValueError(f"sample size and VAE scale factor must be positive, got {sample_size}, {vae_scale_factor}")
    return sample_size * vae_scale_factor


def default_min_crop(working_size: int, mode: str) -> int:
    """The smallest canvas a crop renders at unless set: "native", the working size (every crop gets the model's
    whole canvas: the most detail); "fast", half of it (at least one CANVAS_MULTIPLE), so small regions render on
    a quarter of the pixels, ~4x faster, with less detail and below the model's native resolution."""
    if mode not in CANVAS_MODES:
        raise ValueError(f"canvas mode must be one of {CANVAS_MODES}, got {mode!r}")
    if mode == "native":
        return working_size
    return min(working_size, max(CANVAS_MULTIPLE, working_size // 2 // 8 * 8))


def resolve_canvas(working_size: int | None, min_crop_size: int | None, mode: str, native: int) -> tuple[int, int]:
    """(working size, smallest crop canvas) from the flags: None means the model's native canvas and the mode's
    default_min_crop. ValueError when the crop floor exceeds the working size."""
    working = native if working_size is None else working_size
    floor = default_min_crop(working, mode) if min_crop_size is None else min_crop_size
    if not 0 < floor <= working:
        raise ValueError(f"--min-crop-size {floor} must be positive and at most the working size {working}")
    return working, floor


def canvas_buckets(working_size: int, min_crop_size: int) -> tuple[int, ...]:
    """Every canvas canvas_size can choose, ascending: the working size, then steps of about half the pixels
    (side / sqrt 2, to the nearest CANVAS_MULTIPLE) while at least min_crop_size, and min_crop_size itself.

    A fixed short list, so a compiled UNet meets only these shapes and all of them can be warmed at start-up;
    a crop renders on at most ~2x the pixels its box would need. working_size == min_crop_size: one bucket."""
    if not 0 < min_crop_size <= working_size:
        raise ValueError(f"need 0 < min_crop_size <= working_size, got {min_crop_size}, {working_size}")
    sizes = {working_size, min_crop_size}
    side = working_size / math.sqrt(2)
    while True:
        bucket = round(side / CANVAS_MULTIPLE) * CANVAS_MULTIPLE
        if bucket <= min_crop_size or bucket < CANVAS_MULTIPLE:
            break
        sizes.add(bucket)
        side /= math.sqrt(2)
    return tuple(sorted(sizes))


def canvas_size(frame: Frame, *, working_size: int, min_crop_size: int) -> int:
    """The square canvas the pipeline renders a frame at: the working size for a whole frame; for a crop the
    smallest of canvas_buckets(working_size, min_crop_size) that holds its longer side (the working size when
    none does: larger crops are downsampled to it). Always one of the buckets."""
    if not frame.cropped:
        return working_size
    side = max(frame.width, frame.height)
    return next((b for b in canvas_buckets(working_size, min_crop_size) if b >= side), working_size)


def detail_gain(frame: Frame, canvas: int) -> float:
    """Pixels the region gets in the render per pixel it has in the input: the frame's longer side is scaled onto
    the canvas, so (canvas / longer side) squared. > 1: the model draws the region with more pixels than the
    photo has (a lips crop at 1024); < 1: the render is coarser than the photo (a large frame downsampled)."""
    return (canvas / max(frame.width, frame.height)) ** 2


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
