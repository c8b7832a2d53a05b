"""Attribute-aware negative prompts (thesis 4.10) and the tab20 parse visualisation (thesis 4.3.3)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from faceedit.core.prompts import BASE_NEGATIVE, NEGATIVE_VOCABULARY, negative_prompt
from faceedit.core.viz import colorize, coverage_by_class, overlay, tab20_palette


def test_dark_irises_push_light_eye_colours_away() -> None:
    negative = negative_prompt("eyes", "pitch-black irises, dark brown eyes")
    assert "blue eyes" in negative and "green eyes" in negative
    assert "brown eyes" not in negative and "dark eyes" not in negative
    assert negative.endswith(BASE_NEGATIVE)


def test_callers_negative_comes_first_and_duplicates_are_dropped() -> None:
    negative = negative_prompt("lips", "matte dusty-rose lipstick", "Blurry, shiny")
    terms = [t.strip().lower() for t in negative.split(",")]
    assert terms[:2] == ["blurry", "shiny"]
    assert terms.count("blurry") == 1
    assert "glossy lips" in terms and "matte lips" not in terms
    assert NEGATIVE_VOCABULARY["lips"].split(",")[0] in negative


def test_terms_the_prompt_asks_for_are_never_negative() -> None:
    assert "hat" not in [t.strip() for t in negative_prompt("hair", "a red hat over curly hair").split(",")]


def test_raw_mode_uses_only_the_callers_negative() -> None:
    assert negative_prompt("eyes", "blue eyes", " only this ", raw=True) == "only this"


def test_palette_is_matplotlibs_tab20() -> None:
    expected = (plt.cm.tab20(np.linspace(0, 1, 20))[:19, :3] * 255).astype(np.uint8)
    assert np.array_equal(tab20_palette(), expected)
    labels = np.array([[0, 13], [18, 1]], np.uint8)
    assert np.array_equal(colorize(labels)[0, 1], expected[13])


def test_overlay_tints_only_the_mask() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 255
    tinted = overlay(image, mask, color=(200, 0, 0), alpha=0.5)
    assert tinted[0, 0].tolist() == [100, 0, 0] and not tinted[1:].any()


def test_coverage_by_class_largest_first() -> None:
    labels = np.zeros((10, 10), np.uint8)
    labels[:3] = 13
    labels[9, 9] = 2
    rows = coverage_by_class(labels)
    assert [r[1] for r in rows] == ["background", "hair", "nose"]
    assert rows[1][2] == 0.3 and rows[2][3] == 1
