"""CelebAMask-HQ classes and the editable attributes built from them (DESIGN.md section 5)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

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
