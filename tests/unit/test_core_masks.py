"""Every mask option of DESIGN.md section 5, tested on small synthetic label maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

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


def test_class_union_rejects_ids_and_label_maps_it_cannot_index() -> None:
    with pytest.raises(InvalidOptionError, match=r"class ids must be in \[0, 255\]"):
        masks.class_union(_labels(), [-1])
    with pytest.raises(InvalidOptionError, match="uint8"):
        masks.class_union(_labels().astype(np.int64), [13])


def _brute_force_grow(mask: np.ndarray, px: int) -> np.ndarray:
    """max (or min) over the (2|px|+1)^2 square around each pixel; outside the image counts as unselected for a
    dilation and as selected for an erosion, so a region touching the border does not shrink from it."""
    r = abs(px)
    padded = np.pad(mask, r, constant_values=0 if px > 0 else 255)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * r + 1, 2 * r + 1))
    return windows.max(axis=(2, 3)) if px > 0 else windows.min(axis=(2, 3))


@settings(max_examples=60, deadline=None)
@given(st.integers(-4, 4), st.integers(0, 2**32 - 1))
def test_grow_equals_a_square_kernel_brute_force(px: int, seed: int) -> None:
    mask = (np.random.default_rng(seed).random((17, 23)) > 0.7).astype(np.uint8) * 255
    grown = masks.grow(mask, px)
    expected = mask if px == 0 else _brute_force_grow(mask, px)
    assert grown.dtype == np.uint8 and np.array_equal(grown, expected)


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


@pytest.mark.parametrize("sigma", [1.0, 3.0, 7.0])
def test_feather_kernel_spans_two_sigma_plus_one(sigma: float) -> None:
    block = np.zeros((61, 61), np.uint8)
    block[20:41, 20:41] = 255
    row = masks.feather(block, sigma)[30].astype(int)
    radius = round(sigma)
    # The blur reaches exactly sigma pixels beyond the edge (a 2*sigma+1 kernel, thesis 4.4.2) and no further.
    assert row[40 + radius] > 0 and row[40 + radius + 1] == 0
    assert row[20 - radius] > 0 and row[20 - radius - 1] == 0


@st.composite
def _sparse_masks(draw: st.DrawFn) -> np.ndarray:
    """Mostly-empty soft masks, so the work-saving crop in grow/feather/hull is exercised at every border."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    mask = np.zeros((height, width), np.uint8)
    for _ in range(draw(st.integers(0, 3))):
        y, x = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        patch = draw(arrays(np.uint8, (draw(st.integers(1, 8)), draw(st.integers(1, 8)))))
        mask[y : y + patch.shape[0], x : x + patch.shape[1]] = patch[: height - y, : width - x]
    return mask


@settings(max_examples=150, deadline=None)
@given(_sparse_masks(), st.sampled_from([0.5, 1.0, 2.5, 3.0, 7.0, 12.0]))
def test_feather_equals_a_whole_frame_gaussian(mask: np.ndarray, sigma: float) -> None:
    """The bbox-local blur is exactly the whole-frame one (same 8-bit kernel). Against a float Gaussian it is off
    by under 2 levels of 255 for these sigmas (measured worst 1.6 at sigma 3-12), because OpenCV's 8-bit Gaussian
    uses fixed-point coefficients by design; a soft edge does not care, and it is ~6x faster than float."""
    size = (2 * round(sigma) + 1,) * 2
    whole = cv2.GaussianBlur(mask, size, sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    feathered = masks.feather(mask, sigma)
    assert np.array_equal(feathered, whole)
    exact = ndimage.gaussian_filter(mask.astype(np.float64), sigma=sigma, radius=round(sigma), mode="nearest")
    assert np.abs(feathered.astype(float) - exact).max() < 2.0
    assert not feathered[exact == 0].any()  # nothing appears beyond the kernel's reach


@settings(max_examples=100, deadline=None)
@given(_sparse_masks(), st.integers(-4, 4))
def test_grow_of_sparse_masks_equals_brute_force(mask: np.ndarray, px: int) -> None:
    assert np.array_equal(masks.grow(mask, px), mask if px == 0 else _brute_force_grow(mask, px))


def _hull_of_every_pixel(mask: np.ndarray) -> np.ndarray:
    selected = np.where(mask > 127, 255, 0).astype(np.uint8)
    ys, xs = np.nonzero(selected)
    try:
        hull = ConvexHull(np.stack([xs, ys], axis=1)).vertices
    except (QhullError, ValueError):
        return selected
    canvas = Image.new("L", (mask.shape[1], mask.shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([(int(xs[i]), int(ys[i])) for i in hull], fill=255, outline=255)
    return np.maximum(np.asarray(canvas, dtype=np.uint8), selected)


@settings(max_examples=150, deadline=None)
@given(_sparse_masks())
def test_convex_hull_equals_the_hull_of_every_pixel(mask: np.ndarray) -> None:
    hull = masks.convex_hull(mask)
    assert np.array_equal(hull, _hull_of_every_pixel(mask))
    assert (hull[mask > 127] == 255).all() and set(np.unique(hull)) <= {0, 255}


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


def test_build_mask_offsets_before_growing() -> None:
    labels = np.zeros((20, 20), np.uint8)
    labels[10, 0] = 13
    # Shifted off the image first, the pixel is gone before the 7x7 dilation could bring part of it back.
    gone = build_mask(labels, [13], MaskSpec(offset_x=-1, feather_sigma=0, min_coverage=0))
    assert not gone.any()
    kept = build_mask(labels, [13], MaskSpec(offset_x=1, feather_sigma=0, min_coverage=0))
    assert np.count_nonzero(kept) == 7 * 5 and kept[10, 1] == 255  # columns -2..4, clipped at the border


def test_build_mask_merges_before_inverting_and_intersects() -> None:
    labels = _labels()
    extra = np.zeros_like(labels)
    extra[80:90, 0:10] = 255
    extra[25:30, 35:40] = 255  # inside the hair
    flat = MaskSpec(grow_px=0, feather_sigma=0, min_coverage=0)
    inverted = build_mask(labels, [13], MaskSpec(grow_px=0, feather_sigma=0, invert=True), extra=extra)
    assert inverted[85, 5] == 0 and inverted[30, 40] == 0 and inverted[0, 0] == 255
    both = build_mask(labels, [13], MaskSpec(grow_px=0, feather_sigma=0, merge="intersect"), extra=extra)
    assert np.count_nonzero(both) == 25 and both[27, 37] == 255 and both[85, 5] == 0
    with pytest.raises(InvalidOptionError, match="shapes differ"):
        build_mask(labels, [13], flat, extra=extra[:50])


def test_build_mask_checks_coverage_after_feathering() -> None:
    labels = np.zeros((40, 40), np.uint8)
    labels[20, 20] = 2
    # One hard pixel covers 0.06%; feathered at sigma 7 its peak falls far below 128, so nothing is left.
    assert masks.coverage(masks.class_union(labels, [2])) > 0
    with pytest.raises(CoverageError) as excinfo:
        build_mask(labels, [2], MaskSpec(grow_px=0, min_coverage=0.0001), attribute="nose")
    assert excinfo.value.coverage == 0 and excinfo.value.minimum == 0.0001 and excinfo.value.maximum == 1.0
    assert str(excinfo.value).startswith("region 'nose' covers 0.00% of the image")


def test_coverage_message_never_prints_a_failing_value_equal_to_its_limit() -> None:
    labels = np.zeros((100, 100), np.uint8)
    labels[0, :9] = 2  # 0.09%
    with pytest.raises(CoverageError, match=r"covers 0\.09% of the image; at least 0\.10% is required"):
        build_mask(labels, [2], MaskSpec(grow_px=0, feather_sigma=0), attribute="nose")
    labels[0, :10] = 2  # exactly 0.10% passes: the minimum is inclusive
    assert masks.coverage(build_mask(labels, [2], MaskSpec(grow_px=0, feather_sigma=0))) == pytest.approx(0.001)
    error = CoverageError("lips", 0.000999, 0.001, 1.0)
    assert "covers 0.0999% of the image; at least 0.1000% is required" in str(error)


def test_check_coverage_returns_the_fraction_found() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[:5] = 200
    assert masks.check_coverage(mask, "skin", 0.5, 0.5) == 0.5
    with pytest.raises(CoverageError, match=r"'skin' covers 50\.00% of the image; at most 40\.00% is allowed"):
        masks.check_coverage(mask, "skin", 0.1, 0.4)


@pytest.mark.parametrize(
    "spec,message",
    [
        (MaskSpec(grow_px=1000), "grow_px"),
        (MaskSpec(grow_px=-257), "grow_px"),
        (MaskSpec(feather_sigma=-1), "feather_sigma"),
        (MaskSpec(feather_sigma=float("nan")), "feather_sigma"),
        (MaskSpec(min_coverage=2), "min_coverage"),
        (MaskSpec(min_coverage=-0.1), "min_coverage"),
        (MaskSpec(max_coverage=1.5), "max_coverage"),
        (MaskSpec(min_coverage=0.5, max_coverage=0.1), "larger than max_coverage"),
        (MaskSpec(merge="xor"), "union, intersect, replace"),
    ],
)
def test_spec_validation(spec: MaskSpec, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        spec.validate()
    with pytest.raises(InvalidOptionError, match=message):
        build_mask(_labels(), [13], spec)


def test_default_and_boundary_specs_are_valid() -> None:
    for spec in (MaskSpec(), MaskSpec(grow_px=-256, feather_sigma=0, min_coverage=1, max_coverage=1)):
        assert spec.validate() is spec


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
    assert masks.bounding_box(wide, square=True) == (0, 0, 150, 50)  # as square as a 50-pixel-high image allows
    assert masks.bounding_box(np.zeros((5, 5), np.uint8)) is None
    with pytest.raises(InvalidOptionError, match="padding"):
        masks.bounding_box(mask, padding=-1)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.data(),
    st.integers(0, 30),
)
def test_bounding_box_properties(height: int, width: int, data: st.DataObject, padding: int) -> None:
    y0 = data.draw(st.integers(0, height - 1))
    x0 = data.draw(st.integers(0, width - 1))
    y1 = data.draw(st.integers(y0 + 1, height))
    x1 = data.draw(st.integers(x0 + 1, width))
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 255
    tight = masks.bounding_box(mask, padding=padding)
    assert tight == (max(0, x0 - padding), max(0, y0 - padding), min(width, x1 + padding), min(height, y1 + padding))
    bx0, by0, bx1, by1 = masks.bounding_box(mask, padding=padding, square=True)
    assert 0 <= bx0 <= tight[0] and 0 <= by0 <= tight[1]  # contains the padded box, inside the image
    assert tight[2] <= bx1 <= width and tight[3] <= by1 <= height
    side = max(tight[2] - tight[0], tight[3] - tight[1])
    assert (bx1 - bx0, by1 - by0) == (min(side, width), min(side, height))
