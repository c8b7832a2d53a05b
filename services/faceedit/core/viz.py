"""Colour visualisations of parse maps (thesis 4.3.3: matplotlib's tab20) and mask overlays."""

from __future__ import annotations

from functools import cache

import numpy as np

from faceedit.core.taxonomy import CLASS_NAMES


@cache
def tab20_palette() -> np.ndarray:
    """(19, 3) uint8: plt.cm.tab20(np.linspace(0, 1, 20))[:19, :3] * 255, as the thesis's annexure 3."""
    from matplotlib import colormaps

    colours = colormaps["tab20"](np.linspace(0, 1, 20))[: len(CLASS_NAMES), :3]
    palette = (colours * 255).astype(np.uint8)
    palette.setflags(write=False)
    return palette


@cache
def _lookup() -> np.ndarray:
    """tab20 for the 19 classes, black for every other uint8 value: one gather colours a whole label map."""
    table = np.vstack([tab20_palette(), np.zeros((256 - len(CLASS_NAMES), 3), np.uint8)])
    table.setflags(write=False)
    return table


def colorize(labels: np.ndarray) -> np.ndarray:
    """(H,W) uint8 class ids -> (H,W,3) RGB; ids beyond the palette render black."""
    return _lookup()[labels]


def overlay(
    image: np.ndarray, mask: np.ndarray, *, color: tuple[int, int, int] = (255, 0, 0), alpha: float = 0.5
) -> np.ndarray:
    """Tint image with color where mask is set, in proportion to the soft mask."""
    weight = (mask.astype(np.float32) / 255.0 * alpha)[..., None]
    tinted = image.astype(np.float32) * (1 - weight) + np.asarray(color, np.float32) * weight
    return np.clip(np.rint(tinted), 0, 255).astype(np.uint8)


def coverage_by_class(labels: np.ndarray) -> list[tuple[int, str, float, int]]:
    """(class id, name, fraction, pixels) for every class present, largest first."""
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
    present = [(i, CLASS_NAMES[i], float(n) / labels.size, int(n)) for i, n in enumerate(counts) if n]
    return sorted(present, key=lambda row: -row[3])
