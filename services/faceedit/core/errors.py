"""Typed errors of the pure core. Services map them to gRPC codes (faceedit.rpc.serving.status_for)."""

from __future__ import annotations


class FaceEditError(Exception):
    """Base of every error a caller can fix by changing the request (INVALID_ARGUMENT unless said otherwise)."""


class ImageError(FaceEditError):
    """The image bytes are missing, corrupt, too large or of an unsupported kind."""


class UnknownNameError(FaceEditError):
    """An attribute or class name that faceedit does not know; the message lists the valid names."""


class InvalidOptionError(FaceEditError):
    """A knob outside its documented range."""


class PreconditionError(FaceEditError):
    """The request is well formed but the photo does not hold what it asks for (FAILED_PRECONDITION)."""


class FaceSelectionError(PreconditionError):
    """No face was found, or an edit names a face index that has no face; the message says how many were found."""


class CoverageError(PreconditionError):
    """The region to edit is absent, too small or too large. `where` names what the coverage is a share of."""

    def __init__(
        self, attribute: str, coverage: float, minimum: float, maximum: float, *, where: str = "the image"
    ) -> None:
        self.attribute = attribute
        self.coverage = coverage
        self.minimum = minimum
        self.maximum = maximum
        name = attribute or "mask"
        too_small = coverage < minimum
        found, limit = _distinct_percents(coverage, minimum if too_small else maximum)
        need = f"at least {limit} is required" if too_small else f"at most {limit} is allowed"
        hint = " (no pixel of it was found)" if coverage == 0 else ""
        super().__init__(f"region {name!r} covers {found} of {where}{hint}; {need}")


def _distinct_percents(value: float, limit: float) -> tuple[str, str]:
    """Both as percentages with two decimals, or more where two would print a failing value equal to its limit."""
    for decimals in range(2, 7):
        shown = f"{value:.{decimals}%}", f"{limit:.{decimals}%}"
        if shown[0] != shown[1]:
            break
    return shown
