"""Decoding and encoding of client-facing images, with the normalisation of thesis 4.2.1 and input limits."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceedit.core.errors import ImageError

DEFAULT_MAX_BYTES = 32 * 2**20
DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 8
ORIENTATION = 0x0112  # EXIF tag
ACCEPTED = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


def _open(data: bytes, max_bytes: int) -> Image.Image:
    if not data:
        raise ImageError("image is empty (0 bytes); send PNG, JPEG or WebP bytes")
    if len(data) > max_bytes:
        raise ImageError(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("bytes are not a recognised image; send PNG, JPEG or WebP") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image is too large to decode safely: {exc}") from None


def image_format(data: bytes) -> str:
    """ "png", "jpeg" or "webp"; ImageError for anything else."""
    with _open(data, len(data) or 1) as img:
        return _accepted_format(img)


def _accepted_format(img: Image.Image) -> str:
    fmt = ACCEPTED.get(img.format or "")
    if fmt is None:
        raise ImageError(f"image format {img.format or 'unknown'} is not supported; send PNG, JPEG or WebP")
    return fmt


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB with transparency composited on white (thesis 4.2.1) and 16-bit greys scaled to 8 bits."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.uint32)
        scale = 65535 if img.mode.startswith("I;16") or wide.max(initial=0) > 255 else 255
        img = Image.fromarray(((wide * 255 + scale // 2) // scale).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def decode_image(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Encoded PNG/JPEG/WebP bytes -> (H,W,3) uint8 RGB, EXIF orientation applied, alpha on white."""
    img = _open(data, max_bytes)
    with img:
        _accepted_format(img)
        width, height = img.size
        # The header's size is checked before any pixel is decoded: a small file can claim a huge canvas.
        if width * height > max_pixels:
            raise ImageError(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
        if min(width, height) < MIN_SIDE:
            raise ImageError(f"image is {width}x{height}; both sides must be at least {MIN_SIDE} pixels")
        try:
            img.load()
            # exif_transpose copies even an upright image; only call it when there is something to undo.
            oriented = ImageOps.exif_transpose(img) if img.getexif().get(ORIENTATION, 1) != 1 else img
            rgb = _to_rgb(oriented)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"image data is corrupt or truncated: {exc}") from None
        return np.array(rgb, dtype=np.uint8)


def encode_image(image: np.ndarray, fmt: str = "png", *, quality: int = 95) -> bytes:
    """(H,W,3) RGB or (H,W) grey uint8 -> PNG/JPEG/WebP bytes."""
    pil_format = _PIL_FORMAT.get(fmt.lower())
    if pil_format is None:
        raise ImageError(f"cannot encode to {fmt!r}; choose png, jpeg or webp")
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ImageError(f"expected a uint8 (H,W) or (H,W,3) array, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    options: dict[str, object] = {}
    if pil_format in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    if pil_format == "PNG":
        # Level 1: masks and results are re-encoded per request; size matters less than latency.
        options["compress_level"] = 1
    Image.fromarray(image).save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def decode_mask(data: bytes, size: tuple[int, int], *, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """A caller-supplied mask image -> (H,W) uint8 in {0, 255}; size is the expected (width, height)."""
    img = _open(data, max_bytes)
    with img:
        _accepted_format(img)
        if img.size != tuple(size):
            raise ImageError(
                f"mask is {img.size[0]}x{img.size[1]} but the image is {size[0]}x{size[1]}; they must match"
            )
        try:
            grey = np.asarray(_to_rgb(img).convert("L"), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"mask data is corrupt or truncated: {exc}") from None
    return np.where(grey > 127, 255, 0).astype(np.uint8)
