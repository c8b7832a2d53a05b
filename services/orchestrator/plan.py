"""EditFaceRequest -> a validated cascade plan, before any work is done (a bad third edit must not cost two
inpaints). Pure: no I/O beyond decoding the caller's optional mask images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceedit.core.errors import ImageError, InvalidOptionError, UnknownNameError
from faceedit.core.imageio import decode_mask
from faceedit.core.knobs import Knobs, resolve_knobs
from faceedit.core.masks import MaskSpec
from faceedit.core.taxonomy import CLASS_NAMES, resolve_classes
from faceedit.v1 import face_editor_pb2, types_pb2

MAX_EDITS = 8
MERGE = {
    types_pb2.MASK_MERGE_UNSPECIFIED: "union",
    types_pb2.MASK_MERGE_UNION: "union",
    types_pb2.MASK_MERGE_INTERSECT: "intersect",
    types_pb2.MASK_MERGE_REPLACE: "replace",
}
OUTPUT_FORMATS = {
    types_pb2.IMAGE_FORMAT_UNSPECIFIED: "png",
    types_pb2.IMAGE_FORMAT_PNG: "png",
    types_pb2.IMAGE_FORMAT_JPEG: "jpeg",
    types_pb2.IMAGE_FORMAT_WEBP: "webp",
}


@dataclass(frozen=True)
class EditPlan:
    index: int
    attribute: str
    class_ids: tuple[int, ...]
    spec: MaskSpec
    extra_mask: np.ndarray | None
    knobs: Knobs
    edit: face_editor_pb2.Edit

    @property
    def region(self) -> str:
        """How errors name the region: the attribute, else its explicit classes."""
        return self.attribute or "+".join(CLASS_NAMES[i] for i in self.class_ids)


def _optional(message, name: str):
    return getattr(message, name) if message.HasField(name) else None


def mask_spec(options: types_pb2.MaskOptions) -> MaskSpec:
    defaults = MaskSpec()
    return MaskSpec(
        grow_px=options.grow_px if options.HasField("grow_px") else defaults.grow_px,
        feather_sigma=options.feather_sigma if options.HasField("feather_sigma") else defaults.feather_sigma,
        min_coverage=options.min_coverage if options.HasField("min_coverage") else defaults.min_coverage,
        max_coverage=options.max_coverage if options.HasField("max_coverage") else defaults.max_coverage,
        convex_hull=options.convex_hull,
        offset_x=options.offset_x,
        offset_y=options.offset_y,
        invert=options.invert,
        merge=MERGE.get(options.merge, "union"),
    ).validate()


def plan_edits(request: face_editor_pb2.EditFaceRequest, image_size: tuple[int, int]) -> list[EditPlan]:
    """image_size is the decoded image's (width, height)."""
    if not 1 <= len(request.edits) <= MAX_EDITS:
        raise InvalidOptionError(f"a request carries 1 to {MAX_EDITS} edits, got {len(request.edits)}")
    plans = []
    for index, edit in enumerate(request.edits):
        where = f"edits[{index}]"
        try:
            if not edit.prompt.strip():
                raise InvalidOptionError("prompt is required: describe what the region should become")
            attribute = edit.attribute.strip().lower()
            class_ids = resolve_classes(attribute, list(edit.mask.classes))
            knobs = resolve_knobs(
                attribute,
                strength=_optional(edit, "strength"),
                guidance_scale=_optional(edit, "guidance_scale"),
                steps=_optional(edit, "num_inference_steps"),
                seed=_optional(edit, "seed"),
                crop_padding=_optional(edit.inpaint, "crop_padding"),
            )
            extra = decode_mask(edit.mask.extra_mask.data, image_size) if edit.mask.extra_mask.data else None
            plans.append(EditPlan(index, attribute, class_ids, mask_spec(edit.mask), extra, knobs, edit))
        except (InvalidOptionError, UnknownNameError, ImageError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
    if request.output_format not in OUTPUT_FORMATS:
        raise InvalidOptionError(f"unknown output_format {request.output_format}")
    if request.HasField("output_quality") and not 1 <= request.output_quality <= 100:
        raise InvalidOptionError(f"output_quality must be in [1, 100], got {request.output_quality}")
    return plans
