"""EditFaceRequest validation: the whole cascade is checked before any parse or inpaint."""

from __future__ import annotations

import numpy as np
import pytest

from faceedit.core.errors import FaceEditError, ImageError, InvalidOptionError, UnknownNameError
from faceedit.core.imageio import encode_image
from faceedit.core.masks import MaskSpec
from faceedit.orchestrator.plan import MAX_EDITS, mask_spec, plan_edits
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2

SIZE = (120, 80)  # (width, height)


def _request(*edits: fe.Edit, **fields) -> fe.EditFaceRequest:
    return fe.EditFaceRequest(edits=edits, **fields)


def test_defaults_follow_the_thesis_per_attribute() -> None:
    hair, brows = plan_edits(
        _request(fe.Edit(attribute=" Hair ", prompt="curly auburn hair"), fe.Edit(attribute="eyebrows", prompt="x")),
        SIZE,
    )
    assert (hair.index, hair.attribute, hair.class_ids) == (0, "hair", (13,))
    assert (hair.knobs.strength, hair.knobs.guidance_scale, hair.knobs.steps, hair.knobs.seed) == (0.9, 12.0, 50, 42)
    assert brows.class_ids == (6, 7) and brows.knobs.strength == pytest.approx(0.6)
    assert hair.spec == MaskSpec() and hair.extra_mask is None and hair.region == "hair"


def test_explicit_classes_replace_the_attribute_and_knobs_are_taken() -> None:
    (plan,) = plan_edits(
        _request(
            fe.Edit(
                prompt="green iris",
                strength=0.5,
                guidance_scale=7.5,
                num_inference_steps=20,
                seed=7,
                mask=types_pb2.MaskOptions(classes=["r_eye", "l_eye"]),
            )
        ),
        SIZE,
    )
    assert plan.class_ids == (4, 5) and plan.attribute == "" and plan.region == "l_eye+r_eye"
    assert (plan.knobs.strength, plan.knobs.guidance_scale, plan.knobs.steps, plan.knobs.seed) == (0.5, 7.5, 20, 7)


def test_mask_options_map_onto_the_spec_and_unset_ones_keep_defaults() -> None:
    spec = mask_spec(
        types_pb2.MaskOptions(
            grow_px=-4, min_coverage=0.0, convex_hull=True, offset_x=5, invert=True, merge=types_pb2.MASK_MERGE_REPLACE
        )
    )
    assert spec == MaskSpec(
        grow_px=-4, min_coverage=0.0, convex_hull=True, offset_x=5, invert=True, merge="replace"
    )  # feather_sigma and max_coverage unset -> defaults
    assert mask_spec(types_pb2.MaskOptions(feather_sigma=0.0)).feather_sigma == 0.0  # explicit zero is honoured


def test_extra_mask_is_decoded_at_the_callers_size() -> None:
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    mask[10:20, 30:50] = 200
    extra = types_pb2.MaskOptions(extra_mask=types_pb2.EncodedImage(data=encode_image(mask)))
    (plan,) = plan_edits(_request(fe.Edit(attribute="skin", prompt="tan", mask=extra)), SIZE)
    assert plan.extra_mask is not None and plan.extra_mask.sum() == 10 * 20 * 255
    wrong = types_pb2.MaskOptions(extra_mask=types_pb2.EncodedImage(data=encode_image(mask[:, :60])))
    with pytest.raises(ImageError, match=r"^edits\[0\]: mask is 60x80 but the image is 120x80"):
        plan_edits(_request(fe.Edit(attribute="skin", prompt="tan", mask=wrong)), SIZE)


@pytest.mark.parametrize("count", [0, MAX_EDITS + 1])
def test_edit_count_is_bounded(count: int) -> None:
    edits = [fe.Edit(attribute="hair", prompt="red hair")] * count
    with pytest.raises(InvalidOptionError, match=f"1 to {MAX_EDITS} edits, got {count}"):
        plan_edits(_request(*edits), SIZE)


@pytest.mark.parametrize(
    "bad,error,message",
    [
        (fe.Edit(attribute="lips", prompt="  "), InvalidOptionError, "prompt is required"),
        (fe.Edit(attribute="lipz", prompt="red"), UnknownNameError, "Did you mean 'lips'?"),
        (fe.Edit(prompt="red"), UnknownNameError, "an edit needs an attribute"),
        (
            fe.Edit(prompt="red", mask=types_pb2.MaskOptions(classes=["left_eye"])),
            UnknownNameError,
            "unknown class 'left_eye'",
        ),
        (fe.Edit(attribute="lips", prompt="red", strength=0.0), InvalidOptionError, "strength must be in (0, 1]"),
        (fe.Edit(attribute="lips", prompt="red", guidance_scale=31), InvalidOptionError, "guidance_scale"),
        (fe.Edit(attribute="lips", prompt="red", num_inference_steps=151), InvalidOptionError, "[1, 150], got 151"),
        (
            fe.Edit(attribute="lips", prompt="red", mask=types_pb2.MaskOptions(min_coverage=1.5)),
            InvalidOptionError,
            "min_coverage must be a fraction",
        ),
        (
            fe.Edit(attribute="lips", prompt="red", inpaint=types_pb2.InpaintOptions(crop_padding=5000)),
            InvalidOptionError,
            "crop_padding",
        ),
    ],
)
def test_a_bad_later_edit_fails_the_request_naming_its_index(
    bad: fe.Edit, error: type[FaceEditError], message: str
) -> None:
    good = fe.Edit(attribute="hair", prompt="curly auburn hair")
    with pytest.raises(error) as excinfo:
        plan_edits(_request(good, good, bad), SIZE)
    assert str(excinfo.value).startswith("edits[2]: ") and message in str(excinfo.value)


def test_output_format_and_quality_are_checked() -> None:
    edit = fe.Edit(attribute="hair", prompt="red hair")
    plan_edits(_request(edit, output_format=types_pb2.IMAGE_FORMAT_WEBP, output_quality=1), SIZE)
    with pytest.raises(InvalidOptionError, match=r"output_quality must be in \[1, 100\], got 0"):
        plan_edits(_request(edit, output_quality=0), SIZE)
    with pytest.raises(InvalidOptionError, match="unknown output_format 42"):
        plan_edits(_request(edit, output_format=42), SIZE)
