"""Every bad image kind a caller can send gets an ImageError that says what is wrong."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from faceedit.core.errors import ImageError
from faceedit.core.imageio import decode_image, decode_mask, encode_image, image_format


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gradient(width: int = 40, height: int = 24) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) % 256], axis=-1).astype(np.uint8)


def test_png_round_trip_is_lossless() -> None:
    pixels = _gradient()
    assert np.array_equal(decode_image(encode_image(pixels, "png")), pixels)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_formats_round_trip_closely(fmt: str) -> None:
    pixels = _gradient()
    data = encode_image(pixels, fmt, quality=95)
    assert image_format(data) == fmt
    decoded = decode_image(data)
    assert decoded.shape == pixels.shape
    assert np.abs(decoded.astype(int) - pixels).mean() < 6


def test_zero_bytes() -> None:
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def test_non_image_bytes() -> None:
    with pytest.raises(ImageError, match="not a recognised image"):
        decode_image(b"this is certainly not a picture" * 10)


def test_truncated_png() -> None:
    data = encode_image(_gradient(64, 64), "png")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])


def test_one_pixel_image() -> None:
    with pytest.raises(ImageError, match="at least"):
        decode_image(_encode(Image.new("RGB", (1, 1)), "PNG"))


def test_sixteen_bit_png_scales_to_eight_bits() -> None:
    wide = np.tile(np.array([0, 32768, 65535], dtype=np.uint16), (16, 6))
    data = _encode(Image.fromarray(wide), "PNG")
    decoded = decode_image(data)
    assert decoded.dtype == np.uint8 and decoded.shape == (16, 18, 3)
    assert decoded[0, 0].tolist() == [0, 0, 0]
    assert decoded[0, 1].tolist() == [128, 128, 128]
    assert decoded[0, 2].tolist() == [255, 255, 255]


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    decoded = decode_image(_encode(cmyk, "JPEG", quality=95))
    assert decoded.shape == (32, 32, 3)
    red, green, blue = decoded[16, 16].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_exif_rotated_jpeg_is_transposed() -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red, right half black
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(_encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert decoded.shape == (40, 20, 3)
    assert decoded[5, 10, 0] > 200  # the red half is now on top
    assert decoded[35, 10, 0] < 60


def test_palette_png_with_transparency_is_composited_on_white() -> None:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 255] + [255, 0, 0] * 255)
    img.paste(1, (0, 0, 8, 16))
    img.info["transparency"] = 0  # index 0 (blue) is transparent
    decoded = decode_image(_encode(img, "PNG", transparency=0))
    assert decoded[4, 4].tolist() == [255, 0, 0]
    assert decoded[4, 12].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode,fill", [("RGBA", (0, 0, 0, 0)), ("LA", (0, 0))])
def test_transparent_pixels_become_white(mode: str, fill: tuple) -> None:
    decoded = decode_image(_encode(Image.new(mode, (10, 10), fill), "PNG"))
    assert (decoded == 255).all()


def test_half_transparent_black_is_grey() -> None:
    decoded = decode_image(_encode(Image.new("RGBA", (10, 10), (0, 0, 0, 128)), "PNG"))
    assert 120 <= int(decoded[0, 0, 0]) <= 130


def _png_header_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_image_over_the_pixel_limit_is_rejected_from_its_header() -> None:
    with pytest.raises(ImageError, match="too large"):
        decode_image(_png_header_claiming(30000, 30000))
    with pytest.raises(ImageError, match="8000x8000 = 64000000 pixels; the limit is 40000000"):
        decode_image(_png_header_claiming(8000, 8000))
    with pytest.raises(ImageError, match="the limit is 100"):
        decode_image(encode_image(_gradient(20, 20), "png"), max_pixels=100)


def test_image_over_the_byte_limit() -> None:
    with pytest.raises(ImageError, match="bytes; the limit is 10 bytes"):
        decode_image(encode_image(_gradient(), "png"), max_bytes=10)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unsupported_formats_are_named(fmt: str) -> None:
    with pytest.raises(ImageError, match=f"{fmt} is not supported"):
        decode_image(_encode(Image.new("RGB", (16, 16)), fmt))


def test_encode_rejects_unknown_format_and_dtype() -> None:
    with pytest.raises(ImageError, match="cannot encode"):
        encode_image(_gradient(), "gif")
    with pytest.raises(ImageError, match="uint8"):
        encode_image(np.zeros((4, 4), np.float32))


def test_decode_mask_thresholds_and_checks_size() -> None:
    grey = np.array([[0, 127], [128, 255]], np.uint8).repeat(8, 0).repeat(8, 1)
    mask = decode_mask(encode_image(grey, "png"), (16, 16))
    assert set(np.unique(mask)) == {0, 255}
    assert mask[0, 0] == 0 and mask[0, 15] == 0 and mask[15, 0] == 255
    with pytest.raises(ImageError, match="mask is 16x16 but the image is 20x16"):
        decode_mask(encode_image(grey, "png"), (20, 16))
