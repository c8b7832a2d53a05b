"""Fuzzing the decoding of caller images and masks: every input is decoded or refused with a documented status
(tests/fuzzing.py says how many cases run and how to run more)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from faceedit.core.imageio import MIN_SIDE, decode_image, decode_mask
from tests.fuzzing import EXAMPLES, displayed_size, fuzz, image_bytes, outcome

# Pillow warns (and carries on) about the corrupt EXIF/TIFF blocks the fuzzer feeds it on purpose.
# slow: thousands of generated images
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin"), pytest.mark.slow]

# The limits as decode_image defaults them (read from its signature: the defaults may change, the names not).
_DEFAULTS = inspect.signature(decode_image).parameters
PIXEL_LIMITS = st.sampled_from([_DEFAULTS["max_pixels"].default] * 4 + [400, 64])
BYTE_LIMITS = st.sampled_from([_DEFAULTS["max_bytes"].default] * 4 + [300])


def _intact(facts: dict[str, Any]) -> bool:
    return facts.get("damage") is None


def _image_case(args: tuple[tuple[bytes, dict[str, Any]], int, int]) -> str:
    (data, facts), max_pixels, max_bytes = args
    decoded: list[np.ndarray] = []
    result = outcome(lambda: decoded.append(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)))
    if decoded:
        image = decoded[0]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] * image.shape[1] <= max_pixels and min(image.shape[:2]) >= MIN_SIDE
    if _intact(facts):
        width, height = facts["size"]
        acceptable = min(width, height) >= MIN_SIDE and width * height <= max_pixels and len(data) <= max_bytes
        # A well-formed image within the limits is never refused, and comes out upright.
        assert (result == "OK") == acceptable, (result, facts)
        if decoded:
            assert decoded[0].shape[1::-1] == displayed_size(facts), facts
    return result


def test_decode_image_accepts_or_refuses_every_input_with_a_documented_status() -> None:
    seen = fuzz(st.tuples(image_bytes(), PIXEL_LIMITS, BYTE_LIMITS), _image_case)
    assert seen["cases"] >= EXAMPLES
    assert seen["OK"] > 0 and seen["INVALID_ARGUMENT"] > 0, seen


def _mask_case(args: tuple[tuple[bytes, dict[str, Any]], tuple[int, int] | None]) -> str:
    (data, facts), other_size = args
    expected = other_size or (displayed_size(facts) if "size" in facts else (16, 16))
    decoded: list[np.ndarray] = []
    result = outcome(lambda: decoded.append(decode_mask(data, expected)))
    if decoded:
        mask = decoded[0]
        assert mask.dtype == np.uint8 and mask.shape == (expected[1], expected[0])
        assert set(np.unique(mask)) <= {0, 255}
    if _intact(facts) and other_size is None:
        assert result == "OK", (result, facts)
    return result


def test_decode_mask_accepts_or_refuses_every_input_with_a_documented_status() -> None:
    sizes = st.none() | st.tuples(st.integers(0, 64), st.integers(0, 64))
    seen = fuzz(st.tuples(image_bytes(), sizes), _mask_case)
    assert seen["cases"] >= EXAMPLES
    assert seen["OK"] > 0 and seen["INVALID_ARGUMENT"] > 0, seen
