"""Helpers over the generated messages: numpy arrays <-> faceedit.v1.RawImage (the uncompressed form used between
services), proto3 optional fields, the proto enums by name, and the stage names of StageTimings."""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf.message import Message

from faceedit.core.errors import InvalidOptionError
from faceedit.v1 import types_pb2


def optional(message: Message, name: str) -> Any:
    """The value of a proto3 `optional` field, or None when the caller left it unset (so the default applies)."""
    return getattr(message, name) if message.HasField(name) else None


def to_raw(array: np.ndarray, into: types_pb2.RawImage | None = None) -> types_pb2.RawImage:
    """(H,W,3) or (H,W) uint8 -> RawImage; into: fill this (nested) RawImage in place, which saves copying a
    megabyte-sized sub-message into its parent."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise InvalidOptionError(f"expected a uint8 (H,W) or (H,W,C) array, got {array.dtype} {array.shape}")
    raw = types_pb2.RawImage() if into is None else into
    raw.width, raw.height = array.shape[1], array.shape[0]
    raw.channels = 1 if array.ndim == 2 else array.shape[2]
    raw.pixels = np.ascontiguousarray(array).tobytes()
    return raw


def from_raw(raw: types_pb2.RawImage, *, channels: int, name: str = "image") -> np.ndarray:
    """RawImage -> (H,W,C) array, or (H,W) when channels == 1; InvalidOptionError naming `name` when malformed."""
    if raw.channels != channels:
        raise InvalidOptionError(f"{name}: expected {channels} channel(s), got {raw.channels}")
    if raw.width == 0 or raw.height == 0:
        raise InvalidOptionError(f"{name}: width and height must be positive, got {raw.width}x{raw.height}")
    expected = raw.width * raw.height * raw.channels
    if len(raw.pixels) != expected:
        raise InvalidOptionError(
            f"{name}: {raw.width}x{raw.height}x{raw.channels} needs {expected} bytes, got {len(raw.pixels)}"
        )
    array = np.frombuffer(raw.pixels, dtype=np.uint8)
    shape = (raw.height, raw.width) if channels == 1 else (raw.height, raw.width, channels)
    return array.reshape(shape)


# Client-facing encodings by name, and back.
FORMAT_ENUM = {
    "png": types_pb2.IMAGE_FORMAT_PNG,
    "jpeg": types_pb2.IMAGE_FORMAT_JPEG,
    "webp": types_pb2.IMAGE_FORMAT_WEBP,
}
OUTPUT_FORMATS = {
    types_pb2.IMAGE_FORMAT_UNSPECIFIED: "png",
    types_pb2.IMAGE_FORMAT_PNG: "png",
    types_pb2.IMAGE_FORMAT_JPEG: "jpeg",
    types_pb2.IMAGE_FORMAT_WEBP: "webp",
}
# InpaintOptions.crop_mode -> faceedit.core.framing's frame modes.
FRAME_MODES = {
    types_pb2.CROP_MODE_UNSPECIFIED: "auto",
    types_pb2.CROP_MODE_CROP: "crop",
    types_pb2.CROP_MODE_FULL_FRAME: "full",
}
# MaskOptions.merge -> faceedit.core.masks's merge modes.
MERGE_MODES = {
    types_pb2.MASK_MERGE_UNSPECIFIED: "union",
    types_pb2.MASK_MERGE_UNION: "union",
    types_pb2.MASK_MERGE_INTERSECT: "intersect",
    types_pb2.MASK_MERGE_REPLACE: "replace",
}

# The timed stages in request order, named as StageTimings's <stage>_ms fields (its declaration order); total_ms
# is no stage.
STAGES = tuple(f.name.removesuffix("_ms") for f in types_pb2.StageTimings.DESCRIPTOR.fields if f.name != "total_ms")
