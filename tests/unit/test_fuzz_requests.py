"""Fuzzing request validation: EditFaceRequest through the orchestrator's front door (decode the image, plan the
cascade: knobs, names, masks) and InpaintRequest through the inpainter's job_from_request. Every request is
accepted or refused with a documented status (tests/fuzzing.py says how many cases run and how to run more)."""

from __future__ import annotations

import functools
from typing import Any

import grpc
import pytest
from hypothesis import strategies as st

from faceedit.core.imageio import decode_image, image_size
from faceedit.core.taxonomy import ATTRIBUTES
from faceedit.inpainter.requests import job_from_request
from faceedit.orchestrator.plan import plan_edits
from faceedit.rpc.serving import offloaded_service, status_for
from faceedit.rpc.workers import WorkerPool
from faceedit.v1 import face_editor_pb2, face_editor_pb2_grpc, inpainter_pb2, inpainter_pb2_grpc, types_pb2
from tests.aioserver import threaded_aio_server
from tests.fuzzing import (
    DOCUMENTED,
    EXAMPLES,
    attribute_names,
    class_name_lists,
    fuzz,
    image_bytes,
    messages,
    mostly,
    mutated,
    outcome,
    prompts,
    valid_images,
)

# Pillow warns (and carries on) about the corrupt EXIF/TIFF blocks the fuzzer feeds it on purpose.
# slow: thousands of generated requests
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin"), pytest.mark.slow]

# Decoded sizes the requests are built around: extra masks are drawn at the image's size (so they can pass) or
# at another one (so they must not).
SIZES = [(8, 8), (16, 12), (13, 31), (40, 24)]
EDIT = face_editor_pb2.Edit.DESCRIPTOR


def _encoded(images: st.SearchStrategy[tuple[bytes, Any]]) -> st.SearchStrategy[types_pb2.EncodedImage]:
    return images.map(lambda pair: types_pb2.EncodedImage(data=pair[0]))


INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
FLOAT32 = st.floats(width=32)
# A request passes only when every field of every edit does. Half the requests are "plausible" (each field
# valid about 40 times in 41, so most requests reach the checks that come late and some pass) and half "wild"
# (each field as likely anything as valid).
PLAUSIBLE, WILD = 40, 1


def _in_range(inside: st.SearchStrategy[Any], anything: st.SearchStrategy[Any], weight: int) -> st.SearchStrategy[Any]:
    """Unset or inside the documented range, else anything the field's type can hold."""
    return mostly(st.none() | inside, anything, weight)


def _knobs(prefix: str, weight: int) -> dict[str, st.SearchStrategy[Any]]:
    return {
        f"{prefix}.strength": _in_range(st.floats(0.125, 1.0), FLOAT32, weight),
        f"{prefix}.guidance_scale": _in_range(st.floats(0.0, 30.0), FLOAT32, weight),
        f"{prefix}.num_inference_steps": _in_range(st.integers(8, 150), INT32, weight),
        "faceedit.v1.InpaintOptions.crop_padding": _in_range(st.integers(0, 1024), UINT32, weight),
    }


def _names(weight: int) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "attribute": mostly(st.sampled_from([*ATTRIBUTES, " Hair ", "LIPS"]), attribute_names(), weight),
        "prompt": mostly(st.sampled_from(["curly auburn hair", "red lips"]), prompts(), weight),
    }


@functools.cache
def edit_requests(size: tuple[int, int], weight: int) -> st.SearchStrategy[face_editor_pb2.EditFaceRequest]:
    """EditFaceRequests around an image of size; each field valid about weight times in weight+1."""
    overrides: dict[str, st.SearchStrategy[Any]] = {
        "faceedit.v1.EditFaceRequest.image": _encoded(mostly(valid_images(size), image_bytes(size), weight)),
        "faceedit.v1.EditFaceRequest.output_format": mostly(st.integers(0, 3), INT32, weight),
        "faceedit.v1.EditFaceRequest.output_quality": _in_range(st.integers(1, 100), UINT32, weight),
        **{f"faceedit.v1.Edit.{name}": strategy for name, strategy in _names(weight).items()},
        **_knobs("faceedit.v1.Edit", weight),
        "faceedit.v1.MaskOptions.classes": mostly(st.just([]), class_name_lists(), weight),
        "faceedit.v1.MaskOptions.grow_px": _in_range(st.integers(-16, 16), INT32, weight),
        "faceedit.v1.MaskOptions.feather_sigma": _in_range(st.floats(0.0, 20.0), FLOAT32, weight),
        "faceedit.v1.MaskOptions.min_coverage": _in_range(st.floats(0.0, 0.01), FLOAT32, weight),
        "faceedit.v1.MaskOptions.max_coverage": _in_range(st.floats(0.5, 1.0), FLOAT32, weight),
        "faceedit.v1.MaskOptions.extra_mask": mostly(
            st.none() | _encoded(valid_images(size)), _encoded(image_bytes(size) | image_bytes()), weight
        ),
    }
    edit = messages(EDIT, overrides)
    overrides["faceedit.v1.EditFaceRequest.edits"] = mostly(
        st.lists(edit, min_size=1, max_size=3), st.lists(edit, max_size=10), weight
    )
    return messages(face_editor_pb2.EditFaceRequest.DESCRIPTOR, overrides)


def any_edit_request() -> st.SearchStrategy[face_editor_pb2.EditFaceRequest]:
    return st.sampled_from(SIZES).flatmap(lambda size: edit_requests(size, PLAUSIBLE) | edit_requests(size, WILD))


def front_door(request: face_editor_pb2.EditFaceRequest) -> None:
    """What the orchestrator validates before any downstream call, in its order: the image's header, the whole
    cascade against the header's size, then the pixels."""
    plan_edits(request, image_size(request.image.data))
    decode_image(request.image.data)


def _edit_case(request: face_editor_pb2.EditFaceRequest) -> str:
    return outcome(lambda: front_door(request))


def test_edit_requests_are_planned_or_refused_with_a_documented_status() -> None:
    seen = fuzz(any_edit_request(), _edit_case)
    assert seen["cases"] >= EXAMPLES
    assert seen["OK"] > 0 and seen["INVALID_ARGUMENT"] > 0, seen


def _raw(size: tuple[int, int], channels: int, weight: int) -> st.SearchStrategy[types_pb2.RawImage]:
    """Consistent (width*height*channels bytes) or lying about its size or channel count."""
    width, height = size
    consistent = st.binary(min_size=width * height * channels, max_size=width * height * channels).map(
        lambda pixels: types_pb2.RawImage(width=width, height=height, channels=channels, pixels=pixels)
    )
    lying = st.builds(
        types_pb2.RawImage,
        width=st.sampled_from([0, 1, width, 2**16, 2**32 - 1]),
        height=st.sampled_from([0, 1, height, 2**16, 2**32 - 1]),
        channels=st.sampled_from([0, 1, 3, 4, 2**32 - 1]),
        pixels=st.binary(max_size=64),
    )
    return mostly(
        consistent,
        lying | consistent.map(lambda r: types_pb2.RawImage(**{**_fields(r), "width": height, "height": width})),
        weight,
    )


def _fields(raw: types_pb2.RawImage) -> dict[str, Any]:
    return {"width": raw.width, "height": raw.height, "channels": raw.channels, "pixels": raw.pixels}


@functools.cache
def inpaint_requests(size: tuple[int, int], weight: int) -> st.SearchStrategy[inpainter_pb2.InpaintRequest]:
    overrides: dict[str, st.SearchStrategy[Any]] = {
        "faceedit.v1.InpaintRequest.image": _raw(size, 3, weight),
        "faceedit.v1.InpaintRequest.mask": _raw(size, 1, weight),
        **{f"faceedit.v1.InpaintRequest.{name}": strategy for name, strategy in _names(weight).items()},
        **_knobs("faceedit.v1.InpaintRequest", weight),
        "faceedit.v1.InpaintRequest.preview_size": mostly(st.integers(0, 512), UINT32, weight),
    }
    return messages(inpainter_pb2.InpaintRequest.DESCRIPTOR, overrides)


def any_inpaint_request() -> st.SearchStrategy[inpainter_pb2.InpaintRequest]:
    return st.sampled_from(SIZES).flatmap(lambda size: inpaint_requests(size, PLAUSIBLE) | inpaint_requests(size, WILD))


def _inpaint_case(request: inpainter_pb2.InpaintRequest) -> str:
    return outcome(lambda: job_from_request(request))


def test_inpaint_requests_become_jobs_or_are_refused_with_a_documented_status() -> None:
    seen = fuzz(any_inpaint_request(), _inpaint_case)
    assert seen["cases"] >= EXAMPLES
    assert seen["OK"] > 0 and seen["INVALID_ARGUMENT"] > 0, seen


class ValidatingEditor(face_editor_pb2_grpc.FaceEditorServicer):
    """EditFace as far as the orchestrator goes before its first downstream call."""

    async def EditFace(self, request, context):
        try:
            front_door(request)
        except Exception as exc:
            await context.abort(status_for(exc), str(exc))
        return face_editor_pb2.EditFaceResponse()


class ValidatingInpainter(inpainter_pb2_grpc.InpainterServicer):
    async def Inpaint(self, request, context):
        try:
            job_from_request(request)
        except Exception as exc:
            await context.abort(status_for(exc), str(exc))
        return inpainter_pb2.InpaintResponse()


def _register(server: grpc.aio.Server) -> None:
    """Registered as the servers register theirs: request bytes parsed by faceedit (serving.offloaded_service)."""
    server.add_generic_rpc_handlers(
        (
            offloaded_service(face_editor_pb2.DESCRIPTOR.services_by_name["FaceEditor"], ValidatingEditor(), POOL),
            offloaded_service(inpainter_pb2.DESCRIPTOR.services_by_name["Inpainter"], ValidatingInpainter(), POOL),
        )
    )


POOL = WorkerPool(2)
METHODS = {"edit": "/faceedit.v1.FaceEditor/EditFace", "inpaint": "/faceedit.v1.Inpainter/Inpaint"}
ANSWERED = {grpc.StatusCode.OK, *(code for code in DOCUMENTED)}


def _wire(kind: str, requests: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, bytes]]:
    return requests.flatmap(lambda r: mutated(r.SerializeToString())).map(lambda data: (kind, data))


def test_damaged_wire_bytes_get_a_documented_status_from_a_real_server() -> None:
    """Bytes as a broken or hostile client sends them (truncated, bit-flipped, junk appended; unknown fields and
    enum numbers only the wire form can carry) to a grpc.aio server registered as faceedit's servers are:
    undecodable bytes are INVALID_ARGUMENT (grpc.aio alone answers UNKNOWN), the rest are validated."""
    strategy = st.one_of(_wire("edit", any_edit_request()), _wire("inpaint", any_inpaint_request()))
    with (
        threaded_aio_server(_register) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        calls = {kind: channel.unary_unary(method) for kind, method in METHODS.items()}

        def case(args: tuple[str, bytes]) -> str:
            kind, data = args
            try:
                calls[kind](data, timeout=30)
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
                assert code in ANSWERED and details and "\n" not in details, (code, details[:300])
                undecodable = details.startswith(f"the {METHODS[kind].rsplit('/', 1)[1]} request is not a valid")
                return "UNDECODABLE" if undecodable else code.name
            return "OK"

        seen = fuzz(strategy, case)
    assert seen["cases"] >= EXAMPLES
    assert seen["UNDECODABLE"] > 0 and seen["INVALID_ARGUMENT"] > 0 and seen["OK"] > 0, seen
