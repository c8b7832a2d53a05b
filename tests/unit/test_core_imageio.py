"""Every bad image kind a caller can send gets an ImageError that says what is wrong."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from faceedit.core.errors import ImageError, InvalidOptionError
from faceedit.core.imageio import decode_image, decode_mask, encode_image, image_format, jpeg_scan_complete


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


def _with_orientation(pixels: np.ndarray, orientation: int, fmt: str = "PNG") -> bytes:
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    return _encode(img, fmt, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_reference(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    data = _with_orientation(pixels, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(decode_image(data), expected)


def test_corrupt_exif_does_not_stop_the_orientation() -> None:
    # A TIFF IFD holding Orientation = 6 and an XResolution stored as text instead of a rational: Pillow reads
    # it, but cannot write it back, which ImageOps.exif_transpose does.
    entries = [
        struct.pack("<HHII", 0x0112, 3, 1, 6),
        struct.pack("<HHI4s", 0x011A, 2, 4, b"abc\x00"),
    ]
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :15] = 255
    decoded = decode_image(_encode(Image.fromarray(pixels), "PNG", exif=b"Exif\x00\x00" + tiff))
    assert decoded.shape == (30, 10, 3)
    assert (decoded[:15] == 255).all() and (decoded[15:] == 0).all()


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


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for the kinds Pillow will not write (16-bit RGB) or a header lying about its size."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _png_header_claiming(width: int, height: int) -> bytes:
    return _png(width, height, 8, 2, b"")


def test_sixteen_bit_rgb_png_keeps_the_high_byte() -> None:
    samples = np.array([[0x0000, 0x7FFF, 0xFFFF], [0x8000, 0x1234, 0xABCD]], dtype=">u2")
    pixels = np.tile(samples.reshape(1, 2, 3), (8, 4, 1))  # 8 high, 8 wide
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)
    decoded = decode_image(_png(8, 8, 16, 2, rows))
    assert decoded.shape == (8, 8, 3)
    assert decoded[0, 0].tolist() == [0x00, 0x7F, 0xFF] and decoded[0, 1].tolist() == [0x80, 0x12, 0xAB]


def test_image_over_the_pixel_limit_is_rejected_from_its_header() -> None:
    # The IDAT holds no pixel data at all: only the header was read when these are rejected.
    with pytest.raises(ImageError, match="too large to decode safely"):
        decode_image(_png_header_claiming(30000, 30000))
    with pytest.raises(ImageError, match="8000x8000 = 64000000 pixels; the limit is 50000000"):
        decode_image(_png_header_claiming(8000, 8000))
    with pytest.raises(ImageError, match="the limit is 100"):
        decode_image(encode_image(_gradient(20, 20), "png"), max_pixels=100)


def test_truncated_jpeg_is_rejected_not_grey_filled() -> None:
    """OpenCV's JPEG decoder fills a truncated file's missing rows with grey and reports nothing."""
    data = encode_image(_gradient(64, 48), "jpeg")
    assert jpeg_scan_complete(data)
    for cut in (len(data) - 2, len(data) // 2, len(data) - 200):
        assert not jpeg_scan_complete(data[:cut])
        with pytest.raises(ImageError, match="corrupt or truncated"):
            decode_image(data[:cut])
    assert decode_image(data + b"trailing bytes after the end marker").shape == (48, 64, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_fast_path_equals_pillow_in_every_orientation(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    data = _with_orientation(pixels, orientation, "JPEG")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(decode_image(data), expected)


def test_image_over_the_byte_limit() -> None:
    with pytest.raises(ImageError, match="bytes; the limit is 10 bytes"):
        decode_image(encode_image(_gradient(), "png"), max_bytes=10)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unsupported_formats_are_named(fmt: str) -> None:
    with pytest.raises(ImageError, match=f"{fmt} is not supported"):
        decode_image(_encode(Image.new("RGB", (16, 16)), fmt))


def _seeds() -> list[bytes]:
    pixels = np.random.default_rng(3).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    return [
        _encode(img, "PNG"),
        _encode(img, "JPEG", quality=90),
        _encode(img, "WEBP", quality=80),
        _encode(img.convert("RGBA"), "WEBP", lossless=True),
        _with_orientation(pixels, 6, "JPEG"),
    ]


@pytest.mark.filterwarnings("ignore:.*EXIF:UserWarning", "ignore:Tag data:UserWarning")
@pytest.mark.parametrize("seed_index", range(5))
def test_damaged_files_raise_image_error_and_nothing_else(seed_index: int) -> None:
    """Every prefix and a spread of byte flips of each format: a server maps ImageError to INVALID_ARGUMENT,
    while any other exception would surface as INTERNAL."""
    data = _seeds()[seed_index]
    rng = np.random.default_rng(seed_index)
    damaged = [data[:cut] for cut in range(1, len(data), max(1, len(data) // 150))]
    for _ in range(150):
        flipped = bytearray(data)
        for at in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
            flipped[at] = int(rng.integers(0, 256))
        damaged.append(bytes(flipped))
    outcomes = {"decoded": 0, "rejected": 0}
    for sample in damaged:
        for decode in (decode_image, lambda d: decode_mask(d, (24, 16))):
            try:
                decode(sample)
                outcomes["decoded"] += 1
            except ImageError:
                outcomes["rejected"] += 1
    assert outcomes["rejected"] > 0


def test_truncated_webp_header_is_an_image_error() -> None:
    data = encode_image(_gradient(), "webp")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_image(data[:40])


def test_encode_rejects_unknown_format_and_dtype() -> None:
    with pytest.raises(ImageError, match="cannot encode"):
        encode_image(_gradient(), "gif")
    with pytest.raises(ImageError, match="uint8"):
        encode_image(np.zeros((4, 4), np.float32))
    with pytest.raises(ImageError, match=r"\(H,W,3\)"):
        encode_image(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(InvalidOptionError, match="quality"):
        encode_image(_gradient(), "jpeg", quality=0)


def test_grey_arrays_encode_and_decode_as_grey_rgb() -> None:
    grey = _gradient()[..., 0]
    decoded = decode_image(encode_image(grey, "png"))
    assert all(np.array_equal(decoded[..., c], grey) for c in range(3))


def test_decode_mask_thresholds_and_checks_size() -> None:
    grey = np.array([[0, 127], [128, 255]], np.uint8).repeat(8, 0).repeat(8, 1)
    mask = decode_mask(encode_image(grey, "png"), (16, 16))
    assert set(np.unique(mask)) == {0, 255}
    assert mask[0, 0] == 0 and mask[0, 15] == 0 and mask[15, 0] == 255
    with pytest.raises(ImageError, match="mask is 16x16 but the image is 20x16"):
        decode_mask(encode_image(grey, "png"), (20, 16))


def test_mask_strokes_on_a_transparent_layer_edit_only_the_strokes() -> None:
    layer = np.zeros((16, 16, 4), np.uint8)  # transparent black everywhere
    layer[4:8, 4:8] = (255, 255, 255, 255)  # an opaque white stroke
    mask = decode_mask(_encode(Image.fromarray(layer, "RGBA"), "PNG"), (16, 16))
    assert mask[5, 5] == 255 and np.count_nonzero(mask) == 16


def test_mask_follows_exif_orientation_like_the_image() -> None:
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :15] = 255  # left half marked
    data = _with_orientation(pixels, 6)
    with pytest.raises(ImageError, match="mask is 10x30 but the image is 30x10"):
        decode_mask(data, (30, 10))
    mask = decode_mask(data, (10, 30))
    image = decode_image(data)
    assert np.array_equal(mask == 255, image[..., 0] == 255)


def test_truncated_mask_is_an_image_error() -> None:
    data = encode_image(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8), "png")
    with pytest.raises(ImageError, match="mask data is corrupt or truncated"):
        decode_mask(data[: len(data) // 2], (64, 64))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_image_format_names_the_accepted_formats(fmt: str) -> None:
    assert image_format(encode_image(_gradient(), fmt)) == fmt


def test_image_format_rejects_others() -> None:
    with pytest.raises(ImageError, match="GIF is not supported; send PNG, JPEG or WebP"):
        image_format(_encode(Image.new("RGB", (16, 16)), "GIF"))
    with pytest.raises(ImageError, match="empty"):
        image_format(b"")
