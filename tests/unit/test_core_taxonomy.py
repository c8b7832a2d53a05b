"""Attribute and class names (DESIGN.md section 5): what callers may ask for, and errors that list the options."""

from __future__ import annotations

import pytest

from faceedit.core.errors import UnknownNameError
from faceedit.core.taxonomy import (
    ATTRIBUTES,
    CLASS_NAMES,
    DEFAULT_STRENGTH,
    class_id,
    default_strength,
    resolve_classes,
)

EXPECTED_ATTRIBUTES = {
    "hair": (13,),
    "lips": (11, 12),
    "skin": (1,),
    "eyes": (4, 5),
    "eyebrows": (6, 7),
    "glasses": (3,),
    "earrings": (15,),
    "necklace": (16,),
    "hat": (14,),
    "clothing": (18,),
    "nose": (2,),
    "ears": (8, 9),
    "neck": (17,),
    "mouth": (10,),
}


def test_class_names_are_celebamask_hq_in_id_order() -> None:
    assert CLASS_NAMES == (
        "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
        "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
    )  # fmt: skip
    assert [class_id(name) for name in CLASS_NAMES] == list(range(19))


@pytest.mark.parametrize("attribute", sorted(EXPECTED_ATTRIBUTES))
def test_every_attribute_resolves_to_its_classes(attribute: str) -> None:
    assert ATTRIBUTES[attribute] == EXPECTED_ATTRIBUTES[attribute]
    assert resolve_classes(attribute) == EXPECTED_ATTRIBUTES[attribute]
    assert resolve_classes(f"  {attribute.upper()} ") == EXPECTED_ATTRIBUTES[attribute]


def test_no_other_attributes() -> None:
    assert ATTRIBUTES == EXPECTED_ATTRIBUTES


def test_explicit_classes_win_over_the_attribute() -> None:
    assert resolve_classes("eyes", ["l_eye"]) == (4,)
    assert resolve_classes("", ["r_brow", " L_BROW", "r_brow"]) == (6, 7)  # normalised, de-duplicated, sorted
    assert resolve_classes("not-an-attribute", ["hair"]) == (13,)


def test_strength_defaults() -> None:
    assert DEFAULT_STRENGTH == 0.90
    assert default_strength("eyebrows") == 0.60 and default_strength(" EyeBrows ") == 0.60
    assert all(default_strength(a) == 0.90 for a in ATTRIBUTES if a != "eyebrows")
    assert default_strength("") == 0.90


def test_unknown_attribute_lists_valid_ones_and_suggests() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown attribute 'hiar'\. Did you mean 'hair'\?") as excinfo:
        resolve_classes("hiar")
    assert f"Valid attributes: {', '.join(EXPECTED_ATTRIBUTES)}" in str(excinfo.value)
    with pytest.raises(UnknownNameError) as excinfo:
        resolve_classes("tail")
    assert "Did you mean" not in str(excinfo.value) and "Valid attributes: hair" in str(excinfo.value)


def test_unknown_class_lists_valid_ones_and_suggests_case_insensitively() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown class 'R_BROWW'\. Did you mean 'r_brow'\?") as excinfo:
        resolve_classes("eyes", ["l_eye", "R_BROWW"])
    assert str(excinfo.value).endswith(f"Valid classes: {', '.join(CLASS_NAMES)}")
    with pytest.raises(UnknownNameError, match="unknown class 'eyeball'"):
        class_id("eyeball")


def test_a_long_unknown_name_is_quoted_shortened() -> None:
    # The message is a gRPC trailer: echoed whole, a 100 kB name would turn INVALID_ARGUMENT into a transport error.
    with pytest.raises(UnknownNameError, match=r"unknown attribute 'xxxx+'\.\.\. \(100000 characters\)\.") as excinfo:
        resolve_classes("x" * 100_000)
    assert len(str(excinfo.value)) < 400
    with pytest.raises(UnknownNameError, match=r"\(5000 characters\)"):
        resolve_classes("", ["y" * 5000])


def test_an_edit_needs_an_attribute_or_classes() -> None:
    with pytest.raises(UnknownNameError, match="needs an attribute") as excinfo:
        resolve_classes("   ")
    assert "hair" in str(excinfo.value) and "l_eye" in str(excinfo.value)
