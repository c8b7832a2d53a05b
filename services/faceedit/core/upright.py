"""Tilted faces turned upright for their parse and render, and turned back for the composite (DESIGN.md 7c, as
sd-face-editor does): the roll from the line through the eyes (else the brows), and the rotation of a face frame
onto a canvas large enough that no pixel is cut, with its exact inverse.

Pure: numpy and OpenCV. Angles are in degrees, image coordinates (x right, y down), pixel centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Faces rolled by more than this are turned upright; below it the parser and the model cope (the thesis's aligned
# portraits still vary by a few degrees) and the two resamplings would only soften the render.
ROLL_THRESHOLD = 15.0
EYES = (4, 5)
BROWS = (6, 7)


def roll_degrees(labels: np.ndarray) -> float | None:
    """The face's roll in (-90, 90]: the angle of the line from the eye on the image's left to the eye on its
    right (the centroids of the largest l_eye and r_eye blobs), else the same through the brows; None when
    neither pair is present. Positive when the face leans clockwise as seen (its right-hand eye in the image is
    lower). The l/r labels only separate the two eyes, so a parser that swaps them gives the same angle."""
    for pair in (EYES, BROWS):
        centres = [_largest_blob_centre(labels, class_id) for class_id in pair]
        if None in centres:
            continue
        (xa, ya), (xb, yb) = sorted(centres)
        if xa == xb:
            return 90.0
        return math.degrees(math.atan2(yb - ya, xb - xa))
    return None


def _largest_blob_centre(labels: np.ndarray, class_id: int) -> tuple[float, float] | None:
    """(x, y) centroid of the largest 8-connected region of class_id: a neighbour's eye at the frame's edge is
    smaller than the face's own."""
    count, _, stats, centroids = cv2.connectedComponentsWithStats((labels == class_id).view(np.uint8), connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return float(centroids[largest, 0]), float(centroids[largest, 1])


def should_turn(roll: float | None, threshold: float = ROLL_THRESHOLD) -> bool:
    """Whether a face with this roll is turned upright (|roll| above threshold; an unknown roll is not)."""
    return roll is not None and abs(roll) > threshold


@dataclass(frozen=True)
class Turn:
    """A rotation of a width x height frame by angle degrees (counter-clockwise as seen, cv2's convention) about
    its centre onto an out_width x out_height canvas that holds all of it. matrix maps frame pixel coordinates
    to canvas ones (2x3, row-major)."""

    width: int
    height: int
    angle: float
    out_width: int
    out_height: int
    matrix: tuple[float, float, float, float, float, float]

    @property
    def forward(self) -> np.ndarray:
        return np.asarray(self.matrix, np.float64).reshape(2, 3)


def upright_turn(width: int, height: int, roll: float) -> Turn:
    """The Turn that levels a face of this roll (roll_degrees) in a width x height frame: its eye line becomes
    horizontal, on a canvas grown to hold the rotated frame whole (corners the frame does not cover are filled)."""
    if width < 1 or height < 1:
        raise ValueError(f"a frame has positive sides, got {width}x{height}")
    radians = math.radians(roll)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    out_width = math.ceil(width * cos + height * sin - 1e-9)
    out_height = math.ceil(width * sin + height * cos - 1e-9)
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), roll, 1.0)
    matrix[0, 2] += (out_width - width) / 2
    matrix[1, 2] += (out_height - height) / 2
    return Turn(width, height, roll, out_width, out_height, tuple(float(v) for v in matrix.ravel()))


def turn_upright(image: np.ndarray, turn: Turn, *, nearest: bool = False, fill: int = 0) -> np.ndarray:
    """The frame (an (H,W,3) image, (H,W) mask or label map of turn's frame size) rotated onto turn's canvas.
    nearest for label maps (values kept); fill for the canvas corners the frame does not cover."""
    _check(image, turn.width, turn.height)
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        turn.forward,
        (turn.out_width, turn.out_height),
        flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill,) * 4,
    )


def turn_back(image: np.ndarray, turn: Turn, *, nearest: bool = False) -> np.ndarray:
    """The inverse of turn_upright: an image of turn's canvas size back onto the frame, each frame pixel
    sampled where turn_upright put it (so turning back an upright render lands on the frame's pixels within one
    interpolation). nearest for label maps."""
    _check(image, turn.out_width, turn.out_height)
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        turn.forward,
        (turn.width, turn.height),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def turn_points(points: np.ndarray, turn: Turn) -> np.ndarray:
    """(N, 2) frame coordinates (x, y) -> their canvas coordinates under turn."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ turn.forward[:, :2].T + turn.forward[:, 2]


def _check(image: np.ndarray, width: int, height: int) -> None:
    if image.shape[:2] != (height, width):
        raise ValueError(f"expected an image of {width}x{height}, got {image.shape[1]}x{image.shape[0]}")
