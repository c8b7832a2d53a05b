"""CelebAMask-HQ classes and the editable attributes built from them (DESIGN.md section 5)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

from faceedit.core.errors import UnknownNameError

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)

# Other spellings of the classes that face-parsing checkpoints on the hub put in their id2label (after
# normalise_label): the BiSeNet/face-parsing.PyTorch ports, CelebAMask-HQ's own file names, long-form names.
CLASS_ALIASES: dict[str, tuple[str, ...]] = {
    "background": ("bg",),
    "skin": ("face", "face_skin", "skin_other"),
    "nose": (),
    "eye_g": ("eyeglass", "eyeglasses", "glasses", "eye_glasses"),
    "l_eye": ("left_eye",),
    "r_eye": ("right_eye",),
    "l_brow": ("left_brow", "left_eyebrow", "l_eyebrow"),
    "r_brow": ("right_brow", "right_eyebrow", "r_eyebrow"),
    "l_ear": ("left_ear",),
    "r_ear": ("right_ear",),
    "mouth": ("inner_mouth", "mouth_inner"),
    "u_lip": ("upper_lip", "top_lip"),
    "l_lip": ("lower_lip", "bottom_lip"),
    "hair": (),
    "hat": (),
    "ear_r": ("earring", "earrings", "ear_ring", "ear_rings"),
    "neck_l": ("necklace", "necklaces"),
    "neck": (),
    "cloth": ("clothes", "clothing", "cloths"),
}
_BY_LABEL = {label: name for name in CLASS_NAMES for label in (name, *CLASS_ALIASES[name])}


class CheckpointLabelError(ValueError):
    """A parser checkpoint whose id2label does not name each CelebAMask-HQ class exactly once."""


def normalise_label(label: str) -> str:
    """'Left Eye', 'left-eye' and 'LEFT_EYE' all become 'left_eye'."""
    return re.sub(r"[\s\-.]+", "_", label.strip().lower()).strip("_")


def canonical_class(label: str) -> str | None:
    """The CelebAMask-HQ class a checkpoint label names (a class name or one of its aliases), else None."""
    return _BY_LABEL.get(normalise_label(label))


def canonical_order(id2label: Mapping[int | str, str]) -> tuple[int, ...]:
    """The checkpoint channel that holds each canonical class: canonical_logits = logits[:, order].

    id2label is a checkpoint's config.id2label (keys may be ints or, straight from config.json, digit strings)
    and must cover channels 0..n-1. Every label must name a class (CLASS_NAMES or CLASS_ALIASES) and every
    class must be named exactly once; otherwise CheckpointLabelError lists the unknown labels, the classes
    named twice and the classes missing, so ParseFace's class ids stay CLASS_NAMES' whatever the checkpoint's order.
    """
    labels = {int(key): value for key, value in id2label.items()}
    if sorted(labels) != list(range(len(labels))):
        raise CheckpointLabelError(f"id2label keys must be the channels 0..{len(labels) - 1}; got {sorted(labels)}")
    channels: dict[str, list[int]] = {}
    unknown: list[str] = []
    for channel in sorted(labels):
        name = canonical_class(labels[channel])
        if name is None:
            unknown.append(f"{channel}={labels[channel]!r}")
        else:
            channels.setdefault(name, []).append(channel)
    twice = [f"{name} (channels {', '.join(map(str, found))})" for name, found in channels.items() if len(found) > 1]
    missing = [name for name in CLASS_NAMES if name not in channels]
    if unknown or twice or missing:
        problems = []
        if unknown:
            problems.append(f"unknown classes: {', '.join(unknown)}")
        if twice:
            problems.append(f"classes named more than once: {'; '.join(twice)}")
        if missing:
            problems.append(f"missing classes: {', '.join(missing)}")
        raise CheckpointLabelError(
            f"the checkpoint's id2label does not map onto the {len(CLASS_NAMES)} CelebAMask-HQ classes "
            f"({'; '.join(problems)}). Known names: {', '.join(CLASS_NAMES)} and their aliases "
            "(faceedit.core.taxonomy.CLASS_ALIASES)"
        )
    return tuple(channels[name][0] for name in CLASS_NAMES)


# The thesis's FILTER_CLASSES (annexure 3) plus nose, ears, neck and mouth.
ATTRIBUTES: dict[str, tuple[int, ...]] = {
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

DEFAULT_STRENGTH = 0.90
# Narrow regions are over-edited at 0.90 in cascades (thesis 4.9.5).
ATTRIBUTE_STRENGTH: dict[str, float] = {"eyebrows": 0.60}
_CLASS_IDS = {name: i for i, name in enumerate(CLASS_NAMES)}


# The caller's name is quoted in the error, which travels in a gRPC trailer: clients drop trailers over 8-16 KiB
# (RESOURCE_EXHAUSTED "metadata size exceeds hard limit"), so a long name is shortened rather than echoed whole.
MAX_QUOTED_NAME = 64


def _quoted(name: str) -> str:
    if len(name) <= MAX_QUOTED_NAME:
        return repr(name)
    return f"{name[:MAX_QUOTED_NAME]!r}... ({len(name)} characters)"


def _unknown(kind: str, plural: str, name: str, valid: Sequence[str]) -> UnknownNameError:
    close = difflib.get_close_matches(_normalise(name), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"unknown {kind} {_quoted(name)}.{hint} Valid {plural}: {', '.join(valid)}")


def _normalise(name: str) -> str:
    return name.strip().lower()


def default_strength(attribute: str) -> float:
    return ATTRIBUTE_STRENGTH.get(_normalise(attribute), DEFAULT_STRENGTH)


def class_id(name: str) -> int:
    key = _normalise(name)
    if key not in _CLASS_IDS:
        raise _unknown("class", "classes", name, CLASS_NAMES)
    return _CLASS_IDS[key]


def resolve_classes(attribute: str, classes: Sequence[str] = ()) -> tuple[int, ...]:
    """The class ids an edit targets: explicit class names win, else the attribute's classes."""
    if classes:
        return tuple(sorted({class_id(name) for name in classes}))
    key = _normalise(attribute)
    if not key:
        raise UnknownNameError(
            f"an edit needs an attribute ({', '.join(ATTRIBUTES)}) or explicit class names ({', '.join(CLASS_NAMES)})"
        )
    if key not in ATTRIBUTES:
        raise _unknown("attribute", "attributes", attribute, tuple(ATTRIBUTES))
    return ATTRIBUTES[key]
