"""EditFaceRequest -> a validated cascade plan, before any work is done (a bad third edit must not cost two
inpaints). Pure: no I/O beyond decoding the caller's optional mask images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceedit.core.errors import ImageError, InvalidOptionError, UnknownNameError
from faceedit.core.faces import FACE_CLASSES, HEAD_CLASSES, Face, faces_from_boxes
from faceedit.core.imageio import decode_mask
from faceedit.core.knobs import Knobs, check_prompts, resolve_knobs
from faceedit.core.masks import MaskSpec
from faceedit.core.taxonomy import CLASS_NAMES, resolve_classes
from faceedit.rpc.messages import FRAME_MODES, MERGE_MODES, OUTPUT_FORMATS, optional
from faceedit.v1 import face_editor_pb2, types_pb2

MAX_EDITS = 8
# A step's faces go to the parser in one request, and Triton takes at most max_batch_size images a request (8 in
# model_repository/): the cap on faces per request.
MAX_FACES = 8
# Classes of a head: an edit that names one of them edits faces, one face frame at a time. The others
# (background, necklace, clothing) lie around the faces and are edited on the whole photo.
FACE_REGION = frozenset(FACE_CLASSES) | frozenset(HEAD_CLASSES)


@dataclass(frozen=True)
class EditPlan:
    index: int
    attribute: str
    class_ids: tuple[int, ...]
    spec: MaskSpec
    extra_mask: np.ndarray | None
    knobs: Knobs
    frame_mode: str
    prompt: str
    edit: face_editor_pb2.Edit
    # Whether the region is edited face by face (see per_face), the faces the caller named (empty: every face),
    # and the mask and framing sizes the caller set (they stay in photo pixels; the others scale with the face).
    per_face: bool = True
    face_indices: tuple[int, ...] = ()
    given: frozenset[str] = frozenset()

    @property
    def region(self) -> str:
        """How errors name the region: the attribute, else its explicit classes."""
        return self.attribute or "+".join(CLASS_NAMES[i] for i in self.class_ids)


def mask_spec(options: types_pb2.MaskOptions) -> MaskSpec:
    defaults = MaskSpec()

    def value(name: str):
        given = optional(options, name)
        return getattr(defaults, name) if given is None else given

    return MaskSpec(
        grow_px=value("grow_px"),
        feather_sigma=value("feather_sigma"),
        min_coverage=value("min_coverage"),
        max_coverage=value("max_coverage"),
        convex_hull=options.convex_hull,
        offset_x=options.offset_x,
        offset_y=options.offset_y,
        invert=options.invert,
        merge=MERGE_MODES.get(options.merge, "union"),
    ).validate()


def per_face(class_ids: tuple[int, ...], spec: MaskSpec, extra: np.ndarray | None) -> bool:
    """Whether an edit works face by face: its classes include a part of a head, and its mask is not the
    whole photo's (inverted, or the caller's mask replacing the parse)."""
    replaced = extra is not None and spec.merge == "replace"
    return bool(FACE_REGION.intersection(class_ids)) and not spec.invert and not replaced


def given_sizes(edit: face_editor_pb2.Edit) -> frozenset[str]:
    """The face-relative sizes (grow, feather, crop padding) this edit sets itself."""
    return frozenset(
        name
        for name, message in (("grow_px", edit.mask), ("feather_sigma", edit.mask), ("crop_padding", edit.inpaint))
        if message.HasField(name)
    )


def plan_faces(request: face_editor_pb2.EditFaceRequest, image_size: tuple[int, int], max_faces: int) -> list[Face]:
    """The caller's face boxes as numbered faces (empty: the parse finds them); INVALID_ARGUMENT naming a box
    outside the image or empty, or when there are more than max_faces."""
    if len(request.face_boxes) > max_faces:
        raise InvalidOptionError(f"face_boxes holds {len(request.face_boxes)} boxes; at most {max_faces} are edited")
    return faces_from_boxes([(b.x0, b.y0, b.x1, b.y1) for b in request.face_boxes], image_size)


def plan_edits(request: face_editor_pb2.EditFaceRequest, image_size: tuple[int, int]) -> list[EditPlan]:
    """image_size is the decoded image's (width, height)."""
    if not 1 <= len(request.edits) <= MAX_EDITS:
        raise InvalidOptionError(f"a request carries 1 to {MAX_EDITS} edits, got {len(request.edits)}")
    plans = []
    for index, edit in enumerate(request.edits):
        where = f"edits[{index}]"
        try:
            prompt = check_prompts(edit.prompt, edit.negative_prompt)
            attribute = edit.attribute.strip().lower()
            class_ids = resolve_classes(attribute, list(edit.mask.classes))
            knobs = resolve_knobs(
                attribute,
                strength=optional(edit, "strength"),
                guidance_scale=optional(edit, "guidance_scale"),
                steps=optional(edit, "num_inference_steps"),
                seed=optional(edit, "seed"),
                crop_padding=optional(edit.inpaint, "crop_padding"),
            )
            if edit.inpaint.crop_mode not in FRAME_MODES:
                raise InvalidOptionError(f"unknown crop_mode {edit.inpaint.crop_mode}")
            extra = decode_mask(edit.mask.extra_mask.data, image_size) if edit.mask.extra_mask.data else None
            spec = mask_spec(edit.mask)
            mode = FRAME_MODES[edit.inpaint.crop_mode]
            faces = per_face(class_ids, spec, extra)
            if edit.face_indices and not faces:
                raise InvalidOptionError(
                    "face_indices selects faces, but this region is edited on the whole photo (its classes are "
                    "no part of a head, or its mask is inverted or replaced by the caller's)"
                )
            plans.append(
                EditPlan(
                    index,
                    attribute,
                    class_ids,
                    spec,
                    extra,
                    knobs,
                    mode,
                    prompt,
                    edit,
                    per_face=faces,
                    face_indices=tuple(edit.face_indices),
                    given=given_sizes(edit),
                )
            )
        except (InvalidOptionError, UnknownNameError, ImageError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
    if request.output_format not in OUTPUT_FORMATS:
        raise InvalidOptionError(f"unknown output_format {request.output_format}")
    if request.HasField("output_quality") and not 1 <= request.output_quality <= 100:
        raise InvalidOptionError(f"output_quality must be in [1, 100], got {request.output_quality}")
    return plans
