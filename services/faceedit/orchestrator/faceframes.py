"""One face's part of an edit step, pure: its face frame cut from the photo (turned upright when it is tilted), the
parser's input for it and the way back, its mask, the region it renders, and the composite into the photo.

Every face works in its *work space*: the face frame itself, or, for a face whose roll is above the threshold,
the frame turned upright (faceedit.core.upright). Parse, mask and render happen there, so the parser and the
inpainter see level eyes. The mask and the render are turned back onto the frame, and the one exact blend
(faceedit.core.composite) puts them in the photo: a pixel whose turned-back mask is 0 is the photo's, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from faceedit.core.composite import composite
from faceedit.core.faces import Face, face_relative, face_scale, owned_region
from faceedit.core.framing import Frame, plan_frame
from faceedit.core.geometry import Letterbox, letterbox, resize, unletterbox
from faceedit.core.knobs import Knobs
from faceedit.core.masks import MaskSpec, build_mask
from faceedit.core.upright import Turn, roll_degrees, should_turn, turn_back, turn_upright, upright_turn

# Labels outside the pixels a face owns: no class, so no edit's union selects them.
NOT_OWNED = 255


@dataclass(frozen=True)
class View:
    """How one face is seen in a step: its turn (None: the frame as it is) and where its work space sits in
    the parser's square input."""

    face: Face
    turn: Turn | None
    placement: Letterbox

    def to_space(self, frame_image: np.ndarray, *, nearest: bool = False, fill: int = 0) -> np.ndarray:
        """A frame-sized image, mask or label map in the work space."""
        if self.turn is None:
            return frame_image
        return turn_upright(frame_image, self.turn, nearest=nearest, fill=fill)

    def to_frame(self, space_image: np.ndarray, *, nearest: bool = False) -> np.ndarray:
        """A work-space image, mask or label map back on the frame."""
        return space_image if self.turn is None else turn_back(space_image, self.turn, nearest=nearest)


def coarse_rolls(labels: np.ndarray, placement: Letterbox, faces: list[Face]) -> dict[int, float | None]:
    """Each face's roll from the whole-photo parse, before any fine parse: it decides whether the face's first fine
    parse is already upright, so each step costs one parser request. Measured on the parser's own output (the
    letterbox scales both axes alike, so angles are the photo's): on labels mapped to a 12 MP photo the same angle
    costs ~40x the time."""
    scale_x = placement.new_width / placement.src_width
    scale_y = placement.new_height / placement.src_height
    rolls = {}
    for face in faces:
        x0, y0, x1, y1 = face.frame
        cols = slice(
            placement.pad_left + int(x0 * scale_x), placement.pad_left + max(int(x0 * scale_x) + 1, round(x1 * scale_x))
        )
        rows = slice(
            placement.pad_top + int(y0 * scale_y), placement.pad_top + max(int(y0 * scale_y) + 1, round(y1 * scale_y))
        )
        rolls[face.index] = roll_degrees(labels[rows, cols])
    return rolls


def fine_input(
    image: np.ndarray, face: Face, roll: float | None, threshold: float, size: int
) -> tuple[np.ndarray, View]:
    """The parser's size x size input for a face's frame (turned upright when |roll| > threshold; the corners the
    turn uncovers are white, as the letterbox's padding) and its View."""
    window = image[face.frame_slices]
    turn = None
    if should_turn(roll, threshold):
        height, width = window.shape[:2]
        turn = upright_turn(width, height, roll)
    space = window if turn is None else turn_upright(window, turn, fill=255)
    canvas, placement = letterbox(space, size, coarse=True)
    return canvas, View(face, turn, placement)


@dataclass(frozen=True)
class FineParse:
    """A face's fine labels in its work space and on its frame, and its roll measured from them (the turn
    applied plus what is left of the tilt upright; None when the parse shows neither eyes nor brows)."""

    view: View
    space_labels: np.ndarray
    frame_labels: np.ndarray
    roll: float | None


def fine_parse(labels: np.ndarray, view: View) -> FineParse:
    """The parser's square output for one face mapped back to its work space and frame."""
    space = unletterbox(labels, view.placement, nearest=True)
    residual = roll_degrees(labels)  # the parser's output: the same angle as on the work space, at ~1/50 the cost
    applied = 0.0 if view.turn is None else view.turn.angle
    roll = None if residual is None else _wrap(applied + residual)
    return FineParse(view, space, view.to_frame(space, nearest=True), roll)


def _wrap(degrees: float) -> float:
    """An angle in (-90, 90], as roll_degrees reports it."""
    wrapped = (degrees + 90.0) % 180.0 - 90.0
    return 90.0 if wrapped == -90.0 else wrapped


@dataclass(frozen=True)
class FaceMask:
    """A face's mask in its work space (to render) and on its frame (to composite), its coverage of the face
    frame, and the mask and framing sizes it was built with (face-relative defaults, the caller's values)."""

    space: np.ndarray
    frame: np.ndarray
    coverage: float
    spec: MaskSpec
    knobs: Knobs


def face_mask(
    parse: FineParse,
    faces: list[Face],
    class_ids: tuple[int, ...],
    spec: MaskSpec,
    knobs: Knobs,
    *,
    given: frozenset[str],
    extra: np.ndarray | None,
    attribute: str,
) -> FaceMask:
    """The face's region: the classes among the pixels this face owns (where frames overlap, the nearer face's),
    grown and feathered by the face-relative sizes, and cut to those pixels, so no mask reaches another face.
    Its coverage is of the face frame; the caller checks it (min_coverage and max_coverage are shares of it)."""
    view = parse.view
    face_spec, face_knobs = face_relative(spec, knobs, face_scale(view.face), given=given)
    owned = owned_region(faces, view.face)
    extra_space = None if extra is None else view.to_space(extra[view.face.frame_slices])
    unchecked = replace(face_spec, min_coverage=0.0, max_coverage=1.0)
    if view.turn is None and owned.all():  # one face, level: nothing to cut, and full-frame copies cost ~50 ms
        space = build_mask(parse.space_labels, class_ids, unchecked, extra=extra_space, attribute=attribute)
        frame = space
    else:
        owned_space = view.to_space(owned.view(np.uint8), nearest=True) > 0
        labels = np.where(owned_space, parse.space_labels, NOT_OWNED).astype(np.uint8)
        space = build_mask(labels, class_ids, unchecked, extra=extra_space, attribute=attribute)
        space = np.where(owned_space, space, 0).astype(np.uint8)
        frame = np.where(owned, view.to_frame(space), 0).astype(np.uint8)
    coverage = float(np.count_nonzero(frame > 128)) / frame.size
    return FaceMask(space, frame, coverage, face_spec, face_knobs)


def render_frame(mask: FaceMask, mode: str) -> Frame:
    """Where in its work space a face's region renders (the framing rules of faceedit.core.framing, with the
    work space as the image): always a crop of the photo, so the inpainter renders it as one."""
    frame = plan_frame(mask.space, mode, padding=mask.knobs.crop_padding)
    return Frame(frame.box, True)


def work_image(image: np.ndarray, view: View) -> np.ndarray:
    """The face's pixels in its work space (what the inpainter is sent a region of)."""
    return view.to_space(image[view.face.frame_slices], fill=255)


def paste_face(out: np.ndarray, image: np.ndarray, rendered: np.ndarray, mask: FaceMask, region: Frame, view: View):
    """Blend one face's render into out (the photo being edited, in place) through its frame mask. Pixels where
    the mask is 0 keep image's values, bit for bit; image is the photo before this step."""
    rows, cols = view.face.frame_slices
    x0, y0, x1, y1 = region.box
    generated = resize(rendered, x1 - x0, y1 - y0)
    if view.turn is None:
        sub = (slice(rows.start + y0, rows.start + y1), slice(cols.start + x0, cols.start + x1))
        out[sub] = composite(out[sub], generated, mask.frame[y0:y1, x0:x1])
        return
    space = work_image(image, view).copy()
    space[y0:y1, x0:x1] = generated
    out[rows, cols] = composite(out[rows, cols], view.to_frame(space), mask.frame)


def region_in_photo(region: Frame, view: View) -> tuple[int, int, int, int]:
    """The photo-pixel box that holds a face's render region (for an upright face: around the turned-back
    region)."""
    fx0, fy0 = view.face.frame[0], view.face.frame[1]
    x0, y0, x1, y1 = region.box
    if view.turn is None:
        return fx0 + x0, fy0 + y0, fx0 + x1, fy0 + y1
    inverse = cv2.invertAffineTransform(view.turn.forward)
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    back = corners @ inverse[:, :2].T + inverse[:, 2]
    width, height = view.face.frame_size
    bx0, by0 = np.clip(np.floor(back.min(axis=0)), 0, None).astype(int)
    bx1, by1 = np.ceil(back.max(axis=0)).astype(int)
    return fx0 + int(bx0), fy0 + int(by0), fx0 + min(width, int(bx1)), fy0 + min(height, int(by1))
