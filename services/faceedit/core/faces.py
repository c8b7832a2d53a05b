"""The faces of a photo: found from the parser's own coarse parse (no extra model), or given by the caller; their
face frames (the regions parsed again at the parser's input size), one numbering, the full-resolution label map
that holds each frame's fine parse, and mask sizes in face units (DESIGN.md 7c).

Pure: numpy and OpenCV on label maps and boxes. Boxes are half-open (x0, y0, x1, y1) in photo pixels.

Numbering: by face box area, largest first, ties left to right (smaller x0, then smaller y0). Found faces and
caller boxes are numbered the same way, so an index means the same face in every request and response.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from faceedit.core.errors import CoverageError, FaceSelectionError, InvalidOptionError
from faceedit.core.geometry import Letterbox
from faceedit.core.knobs import DEFAULT_CROP_PADDING, MAX_CROP_PADDING, Knobs
from faceedit.core.masks import MAX_GROW_PX, MaskSpec, class_union

Box = tuple[int, int, int, int]

# Skin and the features: their connected regions are the faces. Glasses belong: they cross the face and would
# otherwise split it in two.
FACE_CLASSES = (1, 2, 3, 4, 5, 6, 7, 10, 11, 12)
# A region needs one of these to be a face: skin alone is a hand, an arm or a shoulder.
FEATURE_CLASSES = (2, 3, 4, 5, 6, 7, 10, 11, 12)
# Parts of the head around the face (ears, hair, hat, earrings, neck): attached to the nearest face.
HEAD_CLASSES = (8, 9, 13, 14, 15, 17)
# Head pixels further from every face than this many face sizes (the face region's longer side) belong to none:
# hair across a whole group photo must not stretch one face's frame over it.
HEAD_REACH = 1.0
# A face whose region (skin and features) spans less than this share of the photo's long side is not found.
MIN_FACE_SHARE = 0.05
# The face frame: the face box grown by this share of its longer side on each side, then made square.
FRAME_MARGIN = 0.15
# The thesis's mask constants (grow 3 px, feather sigma 7, crop padding 32) were set on aligned 1024x1024
# CelebA-HQ portraits, where the head fills the image and its face frame is the whole image: face frames scale
# those defaults by their longer side against this.
REFERENCE_FRAME = 1024
SCALED_FIELDS = ("grow_px", "feather_sigma", "crop_padding")


@dataclass(frozen=True)
class Face:
    """One face: its index (the numbering), box (the tight head box: face, hair, hat, ears, earrings, neck),
    frame (box grown by FRAME_MARGIN of its longer side on each side, squared where the photo allows, inside
    the photo) and area (the box's, in pixels: the numbering's key)."""

    index: int
    box: Box
    frame: Box
    area: int

    @property
    def frame_slices(self) -> tuple[slice, slice]:
        """(rows, columns) of the frame, to cut it from a photo, mask or label map: image[face.frame_slices]."""
        x0, y0, x1, y1 = self.frame
        return slice(y0, y1), slice(x0, x1)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the frame."""
        return self.frame[2] - self.frame[0], self.frame[3] - self.frame[1]


def face_frame(box: Box, photo_size: tuple[int, int]) -> Box:
    """The frame of a face box in a (width, height) photo: the box grown by FRAME_MARGIN of its longer side on
    each side, then grown to a square of its longer side, shifted to stay inside the photo; where the photo is
    narrower than that, the frame spans the whole of that dimension."""
    width, height = photo_size
    x0, y0, x1, y1 = box
    pad = round(FRAME_MARGIN * max(x1 - x0, y1 - y0))
    x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    side = max(x1 - x0, y1 - y0)
    fx0, fx1 = _span(x0, x1, min(side, width), width)
    fy0, fy1 = _span(y0, y1, min(side, height), height)
    return fx0, fy0, fx1, fy1


def _span(lo: int, hi: int, side: int, limit: int) -> tuple[int, int]:
    """A span of length side centred on [lo, hi), shifted to lie inside [0, limit) (side <= limit)."""
    start = min(max(0, (lo + hi - side) // 2), limit - side)
    return start, start + side


def number_faces(boxes: Iterable[Box], photo_size: tuple[int, int]) -> list[Face]:
    """Faces for head boxes, numbered by area (largest first, ties left to right), with their frames."""
    ordered = sorted(boxes, key=lambda b: (-(b[2] - b[0]) * (b[3] - b[1]), b[0], b[1]))
    return [
        Face(i, tuple(map(int, b)), face_frame(b, photo_size), (b[2] - b[0]) * (b[3] - b[1]))
        for i, b in enumerate(ordered)
    ]


def faces_from_boxes(boxes: Sequence[Sequence[int]], photo_size: tuple[int, int]) -> list[Face]:
    """The caller's face boxes (photo pixels) as Faces, numbered like found faces (not by their order in boxes).
    InvalidOptionError naming the box (face_boxes[i] and its values) when one is empty or outside the photo."""
    width, height = photo_size
    checked = []
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = (int(v) for v in box)
        named = f"face_boxes[{i}] (x0={x0}, y0={y0}, x1={x1}, y1={y1})"
        if x0 >= x1 or y0 >= y1:
            raise InvalidOptionError(f"{named} is empty: a face box needs x0 < x1 and y0 < y1")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise InvalidOptionError(f"{named} lies outside the {width}x{height} image")
        checked.append((x0, y0, x1, y1))
    return number_faces(checked, photo_size)


def find_faces(labels: np.ndarray, placement: Letterbox | None = None) -> list[Face]:
    """The faces of a photo from its coarse parse, numbered, boxes and frames in photo pixels.

    labels: the parser's output for the letterboxed photo together with its placement (the cheap input: a
    512x512 map whatever the photo), or, with placement None, labels at the photo's own size.

    A face is a connected (8-neighbour) region of FACE_CLASSES with at least one FEATURE_CLASSES pixel inside
    its box (skin alone is a hand or an arm); a region centred inside a larger one's box is part of it (lips
    cut off the skin by the parse). Head pixels (HEAD_CLASSES) join the face nearest to them, when within HEAD_REACH
    face sizes, so two heads whose hair touches split at the midline. A face is found when its region spans at
    least MIN_FACE_SHARE (5%) of the photo's long side on its longer side, within a parse pixel at either end
    (the coarse parse's resolution: 0.2% of the long side at 512, where a parser blurs the region's edge);
    smaller faces are not. Two faces whose skin touches in the parse are one region, hence one face.
    """
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"a label map is a (H, W) uint8 array, got {labels.dtype} {labels.shape}")
    if placement is None:
        inner = labels
        photo_size = labels.shape[1], labels.shape[0]
    else:
        top, left = placement.pad_top, placement.pad_left
        inner = labels[top : top + placement.new_height, left : left + placement.new_width]
        photo_size = placement.src_width, placement.src_height
    scale_x, scale_y = photo_size[0] / inner.shape[1], photo_size[1] / inner.shape[0]
    count, regions, stats, _ = cv2.connectedComponentsWithStats(class_union(inner, FACE_CLASSES), connectivity=8)
    # Features inside the region's box, not only touching it: a parse may ring an eye or the lips with other
    # labels (a palette parse reads blends as background), cutting every feature off the skin.
    features = cv2.integral(class_union(inner, FEATURE_CLASSES) // 255)
    long_side = max(photo_size)
    kept = np.zeros(count, bool)
    for region in range(1, count):
        x, y, w, h = stats[region, :4]
        inside = features[y + h, x + w] - features[y, x + w] - features[y + h, x] + features[y, x]
        side_px = max(w * scale_x, h * scale_y)
        kept[region] = inside > 0 and side_px + 2 * max(scale_x, scale_y) >= MIN_FACE_SHARE * long_side
    if not kept.any():
        return []
    regions = _merge_nested(regions, stats, kept)
    heads = _attach_heads(inner, regions, stats, kept)
    boxes = []
    for region in np.flatnonzero(kept):
        x0, y0, x1, y1 = heads[region]
        boxes.append(
            (
                math.floor(x0 * scale_x),
                math.floor(y0 * scale_y),
                min(photo_size[0], math.ceil(x1 * scale_x)),
                min(photo_size[1], math.ceil(y1 * scale_y)),
            )
        )
    return number_faces(boxes, photo_size)


def _merge_nested(regions: np.ndarray, stats: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """regions with each kept region whose centre lies in a larger kept region's box relabelled as that one (and
    no longer kept): lips or eyes cut off the skin by a ring of other labels are part of their face, not one."""
    parent = np.arange(len(kept), dtype=regions.dtype)
    hosts: list[int] = []
    for region in sorted(np.flatnonzero(kept), key=lambda r: -stats[r, cv2.CC_STAT_AREA]):
        x, y, w, h = stats[region, :4]
        cx, cy = x + w / 2, y + h / 2
        host = next((a for a in hosts if _holds(stats[a], cx, cy)), None)
        if host is None:
            hosts.append(region)
        else:
            parent[region], kept[region] = host, False
    return parent[regions]


def _holds(stat: np.ndarray, x: float, y: float) -> bool:
    left, top, width, height = stat[:4]
    return left <= x < left + width and top <= y < top + height


def _attach_heads(inner: np.ndarray, regions: np.ndarray, stats: np.ndarray, kept: np.ndarray) -> dict[int, Box]:
    """Each kept region's box (parse pixels) grown over the head pixels nearest to it, within HEAD_REACH."""
    face_pixels = kept[regions]
    # The distance transform's labels name each connected zero area: its zeros are the kept faces' pixels.
    source = np.where(face_pixels, 0, 255).astype(np.uint8)
    distance, nearest = cv2.distanceTransformWithLabels(source, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_CCOMP)
    to_region = np.zeros(int(nearest.max()) + 1, np.int32)
    to_region[nearest[face_pixels]] = regions[face_pixels]
    sizes = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]).astype(np.float32)
    owner = to_region[nearest]
    head = (class_union(inner, HEAD_CLASSES) > 0) & (distance <= HEAD_REACH * sizes[owner])
    owned = np.where(face_pixels | head, owner, 0)
    boxes = {}
    for region, found in enumerate(ndimage.find_objects(owned), start=1):
        if found is not None and kept[region]:
            rows, cols = found
            boxes[region] = (cols.start, rows.start, cols.stop, rows.stop)
    return boxes


def select_faces(faces: Sequence[Face], indices: Collection[int]) -> list[Face]:
    """The faces an edit selects, in index order: every face when indices is empty. FaceSelectionError
    (FAILED_PRECONDITION) when no face was found or an index has no face, saying how many were found."""
    if not faces:
        raise FaceSelectionError(
            "no face was found in the photo (a face must span at least "
            f"{MIN_FACE_SHARE:.0%} of the photo's long side); pass face_boxes to name the faces"
        )
    if not indices:
        return list(faces)
    missing = sorted({i for i in indices if not 0 <= i < len(faces)})
    if missing:
        found = f"{len(faces)} face{'s' if len(faces) != 1 else ''} found (indices 0-{len(faces) - 1})"
        raise FaceSelectionError(f"face index {', '.join(map(str, missing))} has no face: {found}")
    return [faces[i] for i in sorted(set(indices))]


def owned_region(faces: Sequence[Face], face: Face) -> np.ndarray:
    """Boolean map over face's frame of the pixels it owns: where frames overlap, a pixel belongs to the face
    whose box is nearest (Euclidean distance to the box, 0 inside it; ties to the lower index)."""
    fx0, fy0, fx1, fy1 = face.frame
    owned = np.ones((fy1 - fy0, fx1 - fx0), bool)
    others = [o for o in faces if o.index != face.index and _overlap(face.frame, o.frame)]
    if not others:  # the usual case; the distance maps of a 4000 px frame cost ~30 ms
        return owned
    cols, rows = np.arange(fx0, fx1), np.arange(fy0, fy1)
    mine = _box_distance(face.box, cols, rows)
    for other in others:
        ox0, oy0, ox1, oy1 = other.frame
        inside = ((rows >= oy0) & (rows < oy1))[:, None] & ((cols >= ox0) & (cols < ox1))[None, :]
        theirs = _box_distance(other.box, cols, rows)
        closer = theirs < mine if other.index > face.index else theirs <= mine
        owned &= ~(inside & closer)
    return owned


def _box_distance(box: Box, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Squared distance of each (row, col) pixel to the half-open box (0 inside)."""
    x0, y0, x1, y1 = box
    dx = np.maximum(np.maximum(x0 - cols, cols - (x1 - 1)), 0).astype(np.int64)
    dy = np.maximum(np.maximum(y0 - rows, rows - (y1 - 1)), 0).astype(np.int64)
    return dy[:, None] ** 2 + dx[None, :] ** 2


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def compose_labels(coarse: np.ndarray, faces: Sequence[Face], fine: Sequence[np.ndarray]) -> np.ndarray:
    """The full-resolution label map: inside each face frame, the pixels that face owns (owned_region) hold its
    fine labels; the coarse labels stand everywhere else. coarse is at the photo's size; fine[i] is faces[i]'s
    fine parse already mapped back to its frame's size (height, width). A new array."""
    if len(fine) != len(faces):
        raise ValueError(f"{len(faces)} faces but {len(fine)} fine label maps")
    out = coarse.copy()
    for face, labels in zip(faces, fine, strict=True):
        width, height = face.frame_size
        if labels.shape != (height, width):
            raise ValueError(f"face {face.index}'s fine labels are {labels.shape}, its frame is {(height, width)}")
        window = out[face.frame_slices]
        owned = owned_region(faces, face)
        window[owned] = labels[owned]
    return out


def restrict_to_face(mask: np.ndarray, faces: Sequence[Face], face: Face) -> np.ndarray:
    """mask (photo size) kept only on the pixels face owns (its frame, less what nearer faces own); 0
    elsewhere. A new array."""
    out = np.zeros_like(mask)
    rows, cols = face.frame_slices
    out[rows, cols] = np.where(owned_region(faces, face), mask[rows, cols], 0)
    return out


def frame_coverage(mask: np.ndarray, face: Face) -> float:
    """Share of the face frame's pixels above 128 in mask (photo size): what min_coverage bounds for a face."""
    window = mask[face.frame_slices]
    return float(np.count_nonzero(window > 128)) / window.size


def check_face_coverage(mask: np.ndarray, face: Face, attribute: str, minimum: float, maximum: float = 1.0) -> float:
    """frame_coverage, or CoverageError (FAILED_PRECONDITION) naming the face when outside [minimum, maximum]."""
    found = frame_coverage(mask, face)
    if found < minimum or found > maximum:
        raise CoverageError(attribute, found, minimum, maximum, where=f"face {face.index}'s frame")
    return found


def face_scale(face: Face) -> float:
    """The face frame's longer side against REFERENCE_FRAME (the thesis's aligned 1024x1024 portraits, whose
    face frame is the whole image): 1.0 there, 0.25 for a 256 px frame, 2.0 for a 2048 px one."""
    return max(face.frame_size) / REFERENCE_FRAME


def face_relative(spec: MaskSpec, knobs: Knobs, scale: float, *, given: Collection[str] = ()) -> tuple[MaskSpec, Knobs]:
    """spec and knobs with the defaults of grow_px, feather_sigma and crop_padding scaled by scale (face_scale),
    each at least 1 px and within its range; the fields named in given (the caller set them: photo pixels) stay
    as they are. The thesis's values at scale 1: grow 3, sigma 7, padding 32."""
    unknown = set(given) - set(SCALED_FIELDS)
    if unknown:
        raise ValueError(f"only {', '.join(SCALED_FIELDS)} scale with the face, got {sorted(unknown)}")
    if not scale > 0:
        raise ValueError(f"a face scale is positive, got {scale}")
    defaults = MaskSpec()
    changes: dict[str, float] = {}
    if "grow_px" not in given:
        changes["grow_px"] = min(MAX_GROW_PX, max(1, round(defaults.grow_px * scale)))
    if "feather_sigma" not in given:
        changes["feather_sigma"] = min(64.0, max(1.0, defaults.feather_sigma * scale))
    if "crop_padding" not in given:
        knobs = dataclasses.replace(
            knobs, crop_padding=min(MAX_CROP_PADDING, max(1, round(DEFAULT_CROP_PADDING * scale)))
        )
    return dataclasses.replace(spec, **changes), knobs
