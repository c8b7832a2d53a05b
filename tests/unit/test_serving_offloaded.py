"""Protobuf work off the event loop, on real grpc.aio servers: undecodable bytes are INVALID_ARGUMENT (grpc.aio
alone answers UNKNOWN naming a Python class), valid requests of any size reach the servicer unchanged, and the
client stub round-trips large messages in both call kinds."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from faceedit.rpc.auth import BearerAuthInterceptor, TokenStore, bearer_metadata, hash_token
from faceedit.rpc.channels import OffloadedStub
from faceedit.rpc.serving import offloaded_service
from faceedit.rpc.workers import INLINE_BYTES, WorkerPool
from faceedit.v1 import face_editor_pb2, face_editor_pb2_grpc
from tests.aioserver import aio_server

GARBAGE = b"\xff\xff\xff"
EDIT = "/faceedit.v1.FaceEditor/EditFace"
STREAM = "/faceedit.v1.FaceEditor/StreamEditFace"
SERVICE = face_editor_pb2.DESCRIPTOR.services_by_name["FaceEditor"]


class Editor(face_editor_pb2_grpc.FaceEditorServicer):
    """EditFace echoes the request id; StreamEditFace sends one event per character of it."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()

    async def EditFace(self, request, context):
        self.calls["EditFace"] += 1
        if request.request_id == "refuse":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "region 'lips' covers 0.00% of the image")
        return face_editor_pb2.EditFaceResponse(request_id=request.request_id, image=request.image)

    async def StreamEditFace(self, request, context):
        self.calls["StreamEditFace"] += 1
        for index in range(len(request.request_id)):
            yield face_editor_pb2.EditFaceEvent(stage=face_editor_pb2.StageEvent(edit_index=index))


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.close()


def _offloaded(editor: Editor, pool: WorkerPool):
    return lambda server: server.add_generic_rpc_handlers((offloaded_service(SERVICE, editor, pool),))


def _request(request_id: str, image_bytes: int = 0) -> face_editor_pb2.EditFaceRequest:
    request = face_editor_pb2.EditFaceRequest(request_id=request_id)
    request.image.data = b"\x01" * image_bytes
    return request


async def _call(channel: grpc.aio.Channel, method: str, data: bytes) -> tuple[grpc.StatusCode, object]:
    try:
        if method == STREAM:
            return grpc.StatusCode.OK, len([event async for event in channel.unary_stream(method)(data, timeout=5)])
        return grpc.StatusCode.OK, await channel.unary_unary(method)(data, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details()


@pytest.mark.parametrize("method", [EDIT, STREAM])
def test_undecodable_bytes_are_invalid_argument_and_valid_ones_pass(method: str, pool: WorkerPool) -> None:
    editor = Editor()

    async def scenario() -> None:
        async with (
            aio_server(_offloaded(editor, pool)) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            code, details = await _call(channel, method, GARBAGE)
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert details == (
                f"the {method.rsplit('/', 1)[1]} request is not a valid protobuf message (3 bytes); "
                "send it with a client generated from faceedit's .proto files"
            )
            assert sum(editor.calls.values()) == 0
            for size in (0, INLINE_BYTES * 4):  # parsed inline, and on the pool
                code, result = await _call(channel, method, _request("abc", size).SerializeToString())
                assert code == grpc.StatusCode.OK
                if method == STREAM:
                    assert result == 3
                else:
                    response = face_editor_pb2.EditFaceResponse.FromString(result)
                    assert response.request_id == "abc" and len(response.image.data) == size

    asyncio.run(scenario())


def test_the_servicers_own_status_passes_and_unimplemented_methods_say_so(pool: WorkerPool) -> None:
    async def scenario() -> None:
        async with (
            aio_server(_offloaded(Editor(), pool)) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            code, details = await _call(channel, EDIT, _request("refuse").SerializeToString())
            assert (code, details) == (grpc.StatusCode.FAILED_PRECONDITION, "region 'lips' covers 0.00% of the image")
            code, _ = await _call(channel, "/faceedit.v1.FaceEditor/ParseFace", b"")
            assert code == grpc.StatusCode.UNIMPLEMENTED

    asyncio.run(scenario())


def test_without_offloading_grpc_aio_answers_unknown() -> None:
    """Why decoding is ours: should grpc.aio ever map decoding failures itself, this fails and says so."""

    async def scenario() -> None:
        async with (
            aio_server(lambda server: face_editor_pb2_grpc.add_FaceEditorServicer_to_server(Editor(), server)) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            code, details = await _call(channel, EDIT, GARBAGE)
            assert code == grpc.StatusCode.UNKNOWN and "DecodeError" in str(details)

    asyncio.run(scenario())


def test_behind_authentication_an_unauthenticated_callers_bytes_are_never_decoded(
    tmp_path: Path, pool: WorkerPool
) -> None:
    token = "tok-123"
    (tmp_path / "tokens").write_text(f"{hash_token(token)}\n")
    editor = Editor()

    async def scenario() -> None:
        async with (
            aio_server(
                _offloaded(editor, pool), interceptors=[BearerAuthInterceptor(TokenStore(tmp_path / "tokens"))]
            ) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            call = channel.unary_unary(EDIT)
            for metadata, code in (
                (None, grpc.StatusCode.UNAUTHENTICATED),
                (bearer_metadata(token), grpc.StatusCode.INVALID_ARGUMENT),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                    await call(GARBAGE, metadata=metadata, timeout=5)
                assert excinfo.value.code() == code
            response = await call(_request("ok").SerializeToString(), metadata=bearer_metadata(token), timeout=5)
            assert face_editor_pb2.EditFaceResponse.FromString(response).request_id == "ok"
            assert editor.calls == Counter({"EditFace": 1})

    asyncio.run(scenario())


def test_the_offloaded_stub_round_trips_large_messages_in_both_call_kinds(pool: WorkerPool) -> None:
    async def scenario() -> None:
        async with (
            aio_server(_offloaded(Editor(), pool)) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = OffloadedStub(channel, SERVICE, pool)
            response = await stub.unary("EditFace", _request("big", INLINE_BYTES * 8), timeout=5)
            assert isinstance(response, face_editor_pb2.EditFaceResponse)
            assert response.request_id == "big" and len(response.image.data) == INLINE_BYTES * 8
            events = [event async for event in stub.stream("StreamEditFace", _request("abcd"), timeout=5)]
            assert [event.stage.edit_index for event in events] == [0, 1, 2, 3]
            with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                await stub.unary("EditFace", _request("refuse"), timeout=5)
            assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    asyncio.run(scenario())
