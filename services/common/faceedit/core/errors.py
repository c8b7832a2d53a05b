"""Typed errors of the pure core. Services map them to gRPC codes (faceedit.serving.status_for)."""

from __future__ import annotations


class FaceEditError(Exception):
    """Base of every error a caller can fix by changing the request (INVALID_ARGUMENT unless said otherwise)."""


class ImageError(FaceEditError):
    """The image bytes are missing, corrupt, too large or of an unsupported kind."""


class UnknownNameError(FaceEditError):
    """An attribute or class name that faceedit does not know; the message lists the valid names."""


class InvalidOptionError(FaceEditError):
    """A knob outside its documented range."""


class CoverageError(FaceEditError):
    """The region to edit is absent, too small or too large (FAILED_PRECONDITION)."""

    def __init__(self, attribute: str, coverage: float, minimum: float, maximum: float) -> None:
        self.attribute = attribute
        self.coverage = coverage
        self.minimum = minimum
        self.maximum = maximum
        name = attribute or "mask"
        if coverage < minimum:
            need = f"at least {minimum:.2%} is required"
        else:
            need = f"at most {maximum:.2%} is allowed"
        hint = " (the face parser found no such region)" if coverage == 0 else ""
        super().__init__(f"region {name!r} covers {coverage:.2%} of the image{hint}; {need}")
