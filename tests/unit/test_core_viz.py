"""The tab20 parse visualisation (thesis 4.3.3 and annexure 3), mask overlays and per-class coverage."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from faceedit.core.viz import colorize, coverage_by_class, overlay, tab20_palette


def test_palette_is_matplotlibs_tab20() -> None:
    expected = (plt.cm.tab20(np.linspace(0, 1, 20))[:19, :3] * 255).astype(np.uint8)
    palette = tab20_palette()
    assert palette.shape == (19, 3) and palette.dtype == np.uint8
    assert np.array_equal(palette, expected)
    assert len({tuple(row) for row in palette}) == 19  # every class its own colour


def test_colorize_maps_ids_and_paints_unknown_ids_black() -> None:
    expected = tab20_palette()
    labels = np.array([[0, 13], [18, 200]], np.uint8)
    coloured = colorize(labels)
    assert coloured.shape == (2, 2, 3) and coloured.dtype == np.uint8
    assert np.array_equal(coloured[0, 1], expected[13]) and np.array_equal(coloured[1, 0], expected[18])
    assert coloured[1, 1].tolist() == [0, 0, 0]


def test_overlay_tints_in_proportion_to_the_mask() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 255
    mask[0, 1] = 51
    tinted = overlay(image, mask, color=(200, 0, 0), alpha=0.5)
    assert tinted[0, 0].tolist() == [100, 0, 0] and tinted[0, 1].tolist() == [20, 0, 0]
    assert not tinted[1:].any()
    assert overlay(image, mask, alpha=1.0)[0, 0].tolist() == [255, 0, 0]  # default colour red


def test_coverage_by_class_largest_first() -> None:
    labels = np.zeros((10, 10), np.uint8)
    labels[:3] = 13
    labels[9, 9] = 2
    rows = coverage_by_class(labels)
    assert [r[:2] for r in rows] == [(0, "background"), (13, "hair"), (2, "nose")]
    assert rows[1][2] == 0.3 and rows[2][3] == 1
    assert sum(r[2] for r in rows) == 1.0 and sum(r[3] for r in rows) == labels.size
