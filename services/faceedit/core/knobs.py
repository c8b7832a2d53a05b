"""Generation knobs: the thesis's defaults and the accepted ranges, shared by the orchestrator (which checks a
whole cascade before doing any work) and the inpainter (which checks every request it receives)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from faceedit.core.errors import InvalidOptionError
from faceedit.core.taxonomy import default_strength

DEFAULT_GUIDANCE = 12.0  # thesis 4.9.4
DEFAULT_STEPS = 50  # thesis 4.9.3
DEFAULT_SEED = 42
DEFAULT_CROP_PADDING = 32
MAX_STEPS = 150
MAX_GUIDANCE = 30.0
MAX_CROP_PADDING = 1024
# CLIP reads 77 tokens (~300 characters) and the pipeline truncates the rest; the bound only keeps megabyte
# "prompts" away from the text encoders, the prompt cache and the logs.
MAX_PROMPT_CHARS = 2000


@dataclass(frozen=True)
class Knobs:
    strength: float
    guidance_scale: float
    steps: int
    seed: int
    crop_padding: int


def check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        bracket = "(" if low_open else "["
        raise InvalidOptionError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value:g}")


def check_prompts(prompt: str, negative_prompt: str = "") -> str:
    """The stripped prompt; InvalidOptionError when it is blank or either text is longer than MAX_PROMPT_CHARS."""
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if len(text) > MAX_PROMPT_CHARS:
            raise InvalidOptionError(f"{name} is {len(text)} characters; at most {MAX_PROMPT_CHARS} are accepted")
    if not prompt.strip():
        raise InvalidOptionError("prompt is required: describe what the region should become")
    return prompt.strip()


def resolve_knobs(
    attribute: str,
    *,
    strength: float | None = None,
    guidance_scale: float | None = None,
    steps: int | None = None,
    seed: int | None = None,
    crop_padding: int | None = None,
) -> Knobs:
    """Unset knobs take their defaults (strength per attribute); every value is range-checked."""
    knobs = Knobs(
        strength=default_strength(attribute) if strength is None else float(strength),
        guidance_scale=DEFAULT_GUIDANCE if guidance_scale is None else float(guidance_scale),
        steps=DEFAULT_STEPS if steps is None else int(steps),
        seed=DEFAULT_SEED if seed is None else int(seed),
        crop_padding=DEFAULT_CROP_PADDING if crop_padding is None else int(crop_padding),
    )
    check_range("strength", knobs.strength, 0.0, 1.0, low_open=True)
    check_range("guidance_scale", knobs.guidance_scale, 0.0, MAX_GUIDANCE)
    check_range("num_inference_steps", knobs.steps, 1, MAX_STEPS)
    check_range("crop_padding", knobs.crop_padding, 0, MAX_CROP_PADDING)
    if int(knobs.steps * knobs.strength) < 1:
        raise InvalidOptionError(
            f"strength {knobs.strength:g} x num_inference_steps {knobs.steps} leaves no denoising step; raise either"
        )
    return knobs
