"""A parser checkpoint's id2label maps by name onto the canonical CelebAMask-HQ ids, or is refused listing why."""

from __future__ import annotations

import random

import pytest

from faceedit.core.taxonomy import (
    CLASS_ALIASES,
    CLASS_NAMES,
    CheckpointLabelError,
    canonical_class,
    canonical_order,
    normalise_label,
)

# jonathandinu/face-parsing's config.json id2label: the order faceedit's class ids follow.
JONATHANDINU = {
    "0": "background", "1": "skin", "2": "nose", "3": "eye_g", "4": "l_eye", "5": "r_eye", "6": "l_brow",
    "7": "r_brow", "8": "l_ear", "9": "r_ear", "10": "mouth", "11": "u_lip", "12": "l_lip", "13": "hair",
    "14": "hat", "15": "ear_r", "16": "neck_l", "17": "neck", "18": "cloth",
}  # fmt: skip
# The BiSeNet face-parsing.PyTorch order (ported SegFormer fine-tunes keep it), spelled as some copies do.
BISENET = [
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eyeglass", "l_ear", "r_ear", "earrings",
    "nose", "mouth", "u_lip", "l_lip", "neck", "necklace", "cloth", "hair", "hat",
]  # fmt: skip


def _assert_maps(id2label: dict, order: tuple[int, ...]) -> None:
    for class_id, channel in enumerate(order):
        assert canonical_class(id2label[channel]) == CLASS_NAMES[class_id]


def test_jonathandinu_order_is_the_identity() -> None:
    assert canonical_order(JONATHANDINU) == tuple(range(19))


def test_bisenet_order_with_aliases_maps_each_class_to_its_channel() -> None:
    id2label = dict(enumerate(BISENET))
    order = canonical_order(id2label)
    _assert_maps(id2label, order)
    assert order[CLASS_NAMES.index("hair")] == 17 and order[CLASS_NAMES.index("eye_g")] == 6


@pytest.mark.parametrize("seed", range(5))
def test_any_permutation_spelled_any_way_maps_back(seed: int) -> None:
    rng = random.Random(seed)
    names = [rng.choice((name, *CLASS_ALIASES[name])) for name in CLASS_NAMES]
    names = [rng.choice((n, n.upper(), n.replace("_", " "), n.replace("_", "-"))) for n in names]
    rng.shuffle(names)
    id2label = dict(enumerate(names))
    _assert_maps(id2label, canonical_order(id2label))


@pytest.mark.parametrize(
    ("spelling", "name"),
    [("Left Eye", "l_eye"), ("upper-lip", "u_lip"), ("glasses", "eye_g"), ("necklace", "neck_l"),
     ("earring", "ear_r"), ("clothes", "cloth"), ("inner_mouth", "mouth"), ("face", "skin"), ("bg", "background")],
)  # fmt: skip
def test_common_aliases(spelling: str, name: str) -> None:
    assert canonical_class(spelling) == name


def test_normalise_label() -> None:
    assert normalise_label("  Left-Eye.") == "left_eye"


def test_unknown_class_is_refused_with_its_name() -> None:
    id2label = dict(enumerate(CLASS_NAMES))
    id2label[7] = "tattoo"
    with pytest.raises(CheckpointLabelError) as excinfo:
        canonical_order(id2label)
    message = str(excinfo.value)
    assert "unknown classes: 7='tattoo'" in message and "missing classes: r_brow" in message


def test_generic_labels_of_an_unlabelled_checkpoint_are_all_listed() -> None:
    with pytest.raises(CheckpointLabelError, match=r"LABEL_0.*LABEL_18.*missing classes: background, skin"):
        canonical_order({i: f"LABEL_{i}" for i in range(19)})


def test_a_class_named_twice_is_refused() -> None:
    id2label = dict(enumerate(CLASS_NAMES))
    id2label[16] = "neck"  # neck_l's channel also says neck
    with pytest.raises(CheckpointLabelError, match=r"named more than once: neck \(channels 16, 17\).*missing.*neck_l"):
        canonical_order(id2label)


def test_missing_and_extra_channels_are_refused() -> None:
    with pytest.raises(CheckpointLabelError, match="missing classes: cloth"):
        canonical_order(dict(enumerate(CLASS_NAMES[:-1])))
    with pytest.raises(CheckpointLabelError, match=r"channels 0\.\.2"):
        canonical_order({0: "background", 1: "skin", 3: "nose"})
