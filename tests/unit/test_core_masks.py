"""Every mask option of DESIGN.md section 5, tested on small synthetic label maps."""

from __future__ import annotations

import numpy as np
import pytest

from faceedit.core import masks
from faceedit.core.errors import CoverageError, InvalidOptionError
from faceedit.core.masks import MaskSpec, build_mask


def _labels() -> np.ndarray:
    labels = np.zeros((100, 120), np.uint8)
    labels[20:40, 30:60] = 13  # hair
    labels[60:64, 50:70] = 11  # upper lip
    labels[64:68, 50:70] = 12  # lower lip
    return labels


def test_class_union_takes_every_listed_class() -> None:
    mask = masks.class_union(_labels(), [11, 12])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert np.count_nonzero(mask) == 8 * 20


def test_grow_dilates_with_a_square_kernel_and_shrinks_when_negative() -> None:
    dot = np.zeros((21, 21), np.uint8)
    dot[10, 10] = 255
    assert np.count_nonzero(masks.grow(dot, 3)) == 49  # the thesis's 7x7 kernel
    block = np.zeros((21, 21), np.uint8)
    block[5:16, 5:16] = 255
    assert np.count_nonzero(masks.grow(block, -2)) == 7 * 7
    assert masks.grow(block, 0) is block


def test_feather_softens_edges_but_keeps_the_core() -> None:
    block = np.zeros((60, 60), np.uint8)
    block[20:40, 20:40] = 255
    soft = masks.feather(block, 3.0)
    assert soft[30, 30] == 255 and soft[0, 0] == 0
    edge = soft[30, 17:23]
    assert 0 < edge.min() < 255 and np.all(np.diff(edge.astype(int)) >= 0)
    assert masks.feather(block, 0) is block


def test_convex_hull_fills_gaps() -> None:
    ring = np.zeros((40, 40), np.uint8)
    ring[10:30, 10] = ring[10:30, 29] = ring[10, 10:30] = ring[29, 10:30] = 255
    hull = masks.convex_hull(ring)
    assert hull[20, 20] == 255 and hull[5, 5] == 0
    assert np.count_nonzero(hull) == 20 * 20
    assert not masks.convex_hull(np.zeros((5, 5), np.uint8)).any()


def test_offset_shifts_and_drops_what_leaves_the_image() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[2, 3] = 255
    moved = masks.offset(mask, 4, -2)
    assert moved[0, 7] == 255 and np.count_nonzero(moved) == 1
    assert not masks.offset(mask, 20, 0).any()


@pytest.mark.parametrize("mode,expected", [("union", 255), ("intersect", 0), ("replace", 0)])
def test_merge_modes(mode: str, expected: int) -> None:
    a = np.zeros((4, 4), np.uint8)
    b = np.zeros((4, 4), np.uint8)
    a[0, 0] = 255
    b[3, 3] = 255
    merged = masks.merge(a, b, mode)
    assert merged[0, 0] == expected
    assert merged[3, 3] == (0 if mode == "intersect" else 255)
    with pytest.raises(InvalidOptionError):
        masks.merge(a, b, "xor")
    with pytest.raises(InvalidOptionError):
        masks.merge(a, np.zeros((3, 3), np.uint8), "union")


def test_invert_and_coverage() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[:1] = 255
    mask[1, 0] = 128  # not above 128: does not count
    assert masks.coverage(mask) == pytest.approx(0.10)
    assert masks.coverage(masks.invert(mask)) == pytest.approx(0.89)  # 255 - 128 = 127 is not above 128 either


def test_build_mask_defaults_follow_the_thesis() -> None:
    mask = build_mask(_labels(), [11, 12], attribute="lips")
    core = masks.class_union(_labels(), [11, 12])
    assert (mask[core > 0] > 128).all()  # grown then feathered: the region itself stays fully selected
    assert mask[58, 60] > 0  # grown 3 px and feathered beyond the lip
    assert mask[0, 0] == 0


def test_coverage_error_names_attribute_and_coverage() -> None:
    with pytest.raises(CoverageError) as excinfo:
        build_mask(_labels(), [4, 5], attribute="eyes")
    assert excinfo.value.attribute == "eyes" and excinfo.value.coverage == 0
    assert "'eyes' covers 0.00%" in str(excinfo.value) and "at least 0.10%" in str(excinfo.value)
    with pytest.raises(CoverageError, match=r"at most 1\.00% is allowed"):
        build_mask(_labels(), [13], MaskSpec(max_coverage=0.01), attribute="hair")


def test_build_mask_runs_every_option_in_order() -> None:
    labels = _labels()
    spec = MaskSpec(grow_px=0, feather_sigma=0, offset_x=10, offset_y=5, min_coverage=0)
    moved = build_mask(labels, [13], spec)
    assert moved[25, 40] == 255 and moved[20, 30] == 0
    inverted = build_mask(labels, [13], MaskSpec(grow_px=0, feather_sigma=0, invert=True))
    assert inverted[0, 0] == 255 and inverted[30, 40] == 0
    extra = np.zeros_like(labels)
    extra[80:90, 0:10] = 255
    union = build_mask(labels, [13], MaskSpec(grow_px=0, feather_sigma=0), extra=extra)
    assert union[85, 5] == 255 and union[30, 40] == 255
    replaced = build_mask(labels, [13], MaskSpec(grow_px=0, feather_sigma=0, merge="replace"), extra=extra)
    assert replaced[85, 5] == 255 and replaced[30, 40] == 0
    hull = build_mask(labels, [13, 11, 12], MaskSpec(grow_px=0, feather_sigma=0, convex_hull=True))
    assert hull[50, 50] == 255  # between hair and lips


@pytest.mark.parametrize(
    "spec",
    [
        MaskSpec(grow_px=1000),
        MaskSpec(feather_sigma=-1),
        MaskSpec(min_coverage=2),
        MaskSpec(min_coverage=0.5, max_coverage=0.1),
        MaskSpec(merge="xor"),
    ],
)
def test_spec_validation(spec: MaskSpec) -> None:
    with pytest.raises(InvalidOptionError):
        spec.validate()


def test_bounding_box_padding_clipping_and_square() -> None:
    mask = np.zeros((100, 200), np.uint8)
    mask[40:50, 10:30] = 255
    assert masks.bounding_box(mask) == (10, 40, 30, 50)
    assert masks.bounding_box(mask, padding=15) == (0, 25, 45, 65)
    x0, y0, x1, y1 = masks.bounding_box(mask, padding=5, square=True)
    assert x1 - x0 == y1 - y0 == 30 and x0 >= 0 and y0 >= 0
    assert x0 <= 10 and x1 >= 30 and y0 <= 40 and y1 >= 50
    wide = np.zeros((50, 200), np.uint8)
    wide[20:30, 0:150] = 255  # a square containing it cannot fit: the tight box comes back
    assert masks.bounding_box(wide, square=True) == (0, 20, 150, 30)
    assert masks.bounding_box(np.zeros((5, 5), np.uint8)) is None
