"""argparse value types the faceedit commands share: a bad value fails at parse time, naming its flag."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceedit.core.errors import ImageError
from faceedit.core.imageio import image_size


class UsageError(Exception):
    """A problem with the command line the user can fix; `faceedit` prints it as one line and exits 2."""


def read_input(path: Path) -> bytes:
    """The bytes of an input file; UsageError (not a traceback) when it is missing, unreadable or a directory."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give an image file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_image(path: Path) -> bytes:
    """read_input, then the header checked here, so a file that is no image fails before any server is called."""
    data = read_input(path)
    try:
        image_size(data, max_bytes=len(data) or 1)
    except ImageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return data


def _positive(kind: type, text: str, what: str) -> float:
    value = kind(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive {what}, got {text!r}")
    return value


def count(text: str) -> int:
    return int(_positive(int, text, "integer"))


def positive(text: str) -> float:
    return float(_positive(float, text, "number"))


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def photo_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, e.g. 4032x3024."""
    width, sep, height = text.lower().partition("x")
    try:
        if sep:
            return count(width), count(height)
    except (ValueError, argparse.ArgumentTypeError):
        pass
    raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 4032x3024, got {text!r}")


def counts(text: str) -> list[int]:
    """A comma-separated list of positive integers, e.g. a concurrency sweep 1,2,4."""
    try:
        return [count(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2,4, got {text!r}") from exc


def rates(text: str) -> list[float]:
    """A comma-separated list of positive numbers, e.g. open-loop rates 0.5,1,2."""
    try:
        return [positive(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected positive numbers like 0.5,1,2, got {text!r}") from exc
