"""Letterboxing to the models' square canvas and back; attribute and class names."""

from __future__ import annotations

import numpy as np
import pytest

from faceedit.core.errors import UnknownNameError
from faceedit.core.geometry import letterbox, unletterbox
from faceedit.core.taxonomy import ATTRIBUTES, CLASS_NAMES, class_id, default_strength, resolve_classes


@pytest.mark.parametrize("shape", [(64, 64), (90, 40), (40, 90), (33, 77)])
def test_letterbox_round_trip(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 19, size=(4, 4), dtype=np.uint8)
    labels = coarse[np.arange(shape[0] * 4) * 4 // (shape[0] * 4)][:, np.arange(shape[1] * 4) * 4 // (shape[1] * 4)]
    canvas, box = letterbox(labels, 128, fill=0, nearest=True)
    assert canvas.shape == (128, 128)
    assert max(box.new_width, box.new_height) == 128
    back = unletterbox(canvas, box, nearest=True)
    assert back.shape == labels.shape
    assert set(np.unique(back)) <= set(np.unique(labels))  # nearest invents no class
    assert (back == labels).mean() > 0.9


def test_letterbox_pads_white_and_centres() -> None:
    image = np.zeros((50, 100, 3), np.uint8)
    canvas, box = letterbox(image, 100)
    assert (box.pad_left, box.pad_top) == (0, 25)
    assert (canvas[:25] == 255).all() and (canvas[25:75] == 0).all() and (canvas[75:] == 255).all()
    assert unletterbox(canvas, box).shape == image.shape


def test_taxonomy_covers_the_thesis_and_more() -> None:
    assert len(CLASS_NAMES) == 19 and CLASS_NAMES[13] == "hair"
    assert ATTRIBUTES["lips"] == (11, 12) and ATTRIBUTES["eyebrows"] == (6, 7)
    assert {"ears", "neck", "mouth", "nose"} <= set(ATTRIBUTES)
    assert resolve_classes("  Hair ") == (13,)
    assert resolve_classes("eyes", ["l_eye"]) == (4,)
    assert resolve_classes("", ["r_brow", "l_brow"]) == (6, 7)
    assert default_strength("eyebrows") == 0.60 and default_strength("hair") == 0.90
    assert class_id("NECK") == 17


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean 'hair'.*Valid attributes: hair, lips"):
        resolve_classes("hiar")
    with pytest.raises(UnknownNameError, match="Valid class"):
        resolve_classes("eyes", ["l_eyeball"])
    with pytest.raises(UnknownNameError, match="needs an attribute"):
        resolve_classes("")
