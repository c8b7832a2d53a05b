"""Colour visualisations of parse maps (thesis 4.3.3: matplotlib's tab20) and mask overlays."""

from __future__ import annotations

from functools import cache

import numpy as np

from faceedit.core.taxonomy import CLASS_NAMES

# matplotlib's tab20, first 19 colours (thesis annexure 3: plt.cm.tab20(np.linspace(0, 1, 20))[:19, :3] * 255),
# written out so the orchestrator, which colours every parse map, does not need matplotlib (test_core_viz checks
# these against matplotlib's).
_TAB20 = (
    (31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44), (152, 223, 138),
    (214, 39, 40), (255, 152, 150), (148, 103, 189), (197, 176, 213), (140, 86, 75), (196, 156, 148),
    (227, 119, 194), (247, 182, 210), (127, 127, 127), (199, 199, 199), (188, 189, 34), (219, 219, 141),
    (23, 190, 207),
)  # fmt: skip


@cache
def tab20_palette() -> np.ndarray:
    """(19, 3) uint8: tab20's colour per class."""
    palette = np.array(_TAB20[: len(CLASS_NAMES)], np.uint8)
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
