"""Portraits with known label maps: any number of schematic faces, of any size, position and roll, on a photo of any
size, drawn in the palette parser's colours (faceedit.export.palette_parser), so a test knows the true lips, eyes
or hair of every face and the palette parser reads them back.

Each face is drawn with OpenCV inside its own window (upright, then turned by its roll with nearest sampling, so
the label map stays exact), never per pixel in Python: a 50 MP photo with two large faces takes a few seconds.

    portrait((6000, 4000), [FaceSpec(2000, 1800, 700), FaceSpec(4200, 1900, 500, roll=35)])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from faceedit.export.palette_parser import PALETTE

Box = tuple[int, int, int, int]
# The classes that make a head (face, features, hair, hat, ears, earrings, neck): a face's true box.
HEAD_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17)
HEIGHT_RATIO = 1.3  # face (skin ellipse) height / width


@dataclass(frozen=True)
class FaceSpec:
    """A face centred at (cx, cy) in photo pixels, its skin ellipse width px wide (height 1.3 x width), rolled by
    roll degrees (positive: clockwise as seen, faceedit.core.upright's convention). Hat, glasses, earrings and
    necklace are optional; hair, ears, neck and clothing are always drawn."""

    cx: float
    cy: float
    width: int
    roll: float = 0.0
    hat: bool = False
    glasses: bool = False
    earrings: bool = False
    necklace: bool = False


@dataclass(frozen=True)
class Portrait:
    """image (H,W,3) RGB in the palette; labels (H,W) the true class ids; owners (H,W): 1 + the position in the
    spec list of the face that drew each pixel (0: background); boxes: each face's true head box (HEAD_IDS
    pixels it owns), in spec order (not find_faces' numbering by area)."""

    image: np.ndarray
    labels: np.ndarray
    owners: np.ndarray
    boxes: tuple[Box, ...]

    def region(self, face: int, class_ids: Sequence[int]) -> np.ndarray:
        """Boolean map of face's (spec position) true pixels of class_ids: e.g. region(0, (11, 12)) = its lips."""
        return (self.owners == face + 1) & np.isin(self.labels, list(class_ids))


def _draw_upright(spec: FaceSpec, size: int) -> np.ndarray:
    """The face's labels on a size x size canvas, its centre at the canvas centre, upright. Drawn back to front;
    the person's left (l_eye, l_brow, l_ear) is on the image's right, as in CelebAMask-HQ."""
    canvas = np.zeros((size, size), np.uint8)
    c = size // 2
    w = float(spec.width)
    h = w * HEIGHT_RATIO

    def ellipse(x: float, y: float, ax: float, ay: float, cls: int) -> None:
        axes = (max(1, round(ax)), max(1, round(ay)))
        cv2.ellipse(canvas, (round(c + x), round(c + y)), axes, 0, 0, 360, cls, -1)

    def rect(x0: float, y0: float, x1: float, y1: float, cls: int) -> None:
        cv2.rectangle(canvas, (round(c + x0), round(c + y0)), (round(c + x1), round(c + y1)), cls, -1)

    ellipse(0, 1.25 * h, 1.05 * w, 0.5 * h, 18)  # clothing: shoulders below the neck
    rect(-0.22 * w, 0.25 * h, 0.22 * w, 0.85 * h, 17)  # neck
    if spec.necklace:
        ellipse(0, 0.8 * h, 0.24 * w, 0.03 * h, 16)
    ellipse(0, -0.08 * h, 0.62 * w, 0.6 * h, 13)  # hair behind the head
    for side, ear in ((1, 8), (-1, 9)):
        ellipse(side * 0.5 * w, 0.0, 0.09 * w, 0.13 * h, ear)
        if spec.earrings:
            ellipse(side * 0.52 * w, 0.16 * h, 0.035 * w, 0.035 * w, 15)
    ellipse(0, 0, 0.5 * w, 0.5 * h, 1)  # skin
    ellipse(0, -0.42 * h, 0.46 * w, 0.14 * h, 13)  # fringe over the forehead
    if spec.hat:
        ellipse(0, -0.55 * h, 0.6 * w, 0.16 * h, 14)
    for side, brow, eye in ((1, 6, 4), (-1, 7, 5)):
        ellipse(side * 0.2 * w, -0.17 * h, 0.12 * w, 0.025 * h, brow)
        if spec.glasses:
            ellipse(side * 0.2 * w, -0.07 * h, 0.14 * w, 0.07 * h, 3)
        ellipse(side * 0.2 * w, -0.07 * h, 0.08 * w, 0.035 * h, eye)
    ellipse(0, 0.08 * h, 0.07 * w, 0.1 * h, 2)  # nose
    ellipse(0, 0.245 * h, 0.17 * w, 0.03 * h, 11)  # upper lip
    ellipse(0, 0.3 * h, 0.15 * w, 0.035 * h, 12)  # lower lip
    ellipse(0, 0.272 * h, 0.14 * w, 0.008 * h, 10)  # mouth: the line between the lips
    return canvas


def _window(spec: FaceSpec) -> int:
    """Side of the square canvas that holds the face, its clothing and any roll (the farthest drawn point
    from the centre is the shoulders' edge, about 1.75 h)."""
    return 2 * math.ceil(1.8 * spec.width * HEIGHT_RATIO) + 1


def portrait(size: tuple[int, int], faces: Sequence[FaceSpec], *, noise: int = 0, seed: int = 0) -> Portrait:
    """A (width, height) photo of faces drawn in spec order (a later face covers an earlier one where they
    overlap) on a white background, with its true labels, owners and head boxes.

    noise: add uniform noise in [-noise, noise] to each channel of the pixels inside the faces' windows; up to 8
    keeps every pure colour within the palette parser's threshold (8 * sqrt 3 < 30), so the parse stays exact
    on unresized images. Default 0: the image is exactly PALETTE[labels]."""
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"a photo has positive sides, got {width}x{height}")
    if not 0 <= noise <= 8:
        raise ValueError(f"noise must be in [0, 8] to keep the palette parse exact, got {noise}")
    labels = np.zeros((height, width), np.uint8)
    owners = np.zeros((height, width), np.uint8)
    windows = []
    for position, spec in enumerate(faces):
        if spec.width < 4:
            raise ValueError(f"faces[{position}] is {spec.width} px wide; at least 4 are needed to draw it")
        side = _window(spec)
        drawn = _draw_upright(spec, side)
        if spec.roll:
            centre = ((side - 1) / 2, (side - 1) / 2)
            turn = cv2.getRotationMatrix2D(centre, -spec.roll, 1.0)  # cv2 turns counter-clockwise
            drawn = cv2.warpAffine(drawn, turn, (side, side), flags=cv2.INTER_NEAREST, borderValue=0)
        x0, y0 = round(spec.cx) - side // 2, round(spec.cy) - side // 2
        px0, py0, px1, py1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
        if px0 >= px1 or py0 >= py1:
            raise ValueError(f"faces[{position}] at ({spec.cx}, {spec.cy}) lies outside the {width}x{height} photo")
        local = drawn[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0]
        window = (slice(py0, py1), slice(px0, px1))
        np.copyto(labels[window], local, where=local > 0)
        np.copyto(owners[window], np.uint8(position + 1), where=local > 0)
        windows.append(window)
    image = np.empty((height, width, 3), np.uint8)
    image[...] = PALETTE[0]
    lut = PALETTE.reshape(-1, 1, 3)
    table = np.vstack([lut, np.zeros((256 - len(PALETTE), 1, 3), np.uint8)])
    rng = np.random.default_rng(seed)
    for window in windows:
        ids = labels[window]
        colours = cv2.LUT(cv2.merge([ids, ids, ids]), table)  # one OpenCV pass, not a numpy gather
        if noise:
            jitter = rng.integers(-noise, noise + 1, colours.shape, dtype=np.int16)
            colours = np.clip(colours.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
        image[window] = colours
    boxes = tuple(_head_box(labels, owners, window, position) for position, window in enumerate(windows))
    return Portrait(image, labels, owners, boxes)


def _head_box(labels: np.ndarray, owners: np.ndarray, window: tuple[slice, slice], position: int) -> Box:
    """The box of the HEAD_IDS pixels face position owns (only its window can hold them)."""
    rows, cols = window
    head = np.zeros(256, np.uint8)
    head[list(HEAD_IDS)] = 1
    mine = (cv2.LUT(labels[window], head) > 0) & (owners[window] == position + 1)
    ys, xs = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
    if ys.size == 0:
        raise ValueError(f"faces[{position}] is hidden by later faces")
    return cols.start + int(xs[0]), rows.start + int(ys[0]), cols.start + int(xs[-1]) + 1, rows.start + int(ys[-1]) + 1
