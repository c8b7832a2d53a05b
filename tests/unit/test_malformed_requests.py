"""faceedit.malformed on a real grpc.aio server: undecodable request bytes get INVALID_ARGUMENT (grpc.aio alone
answers UNKNOWN naming a Python class), decodable ones reach the servicer unchanged, in every handler style."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import grpc
import pytest

from faceedit.auth import BearerAuthInterceptor, TokenStore, bearer_metadata, hash_token
from faceedit.malformed import MalformedRequestInterceptor
from faceedit.v1 import face_editor_pb2, face_editor_pb2_grpc
from tests.aioserver import aio_server

GARBAGE = b"\xff\xff\xff"
EDIT = "/faceedit.v1.FaceEditor/EditFace"
STREAM = "/faceedit.v1.FaceEditor/StreamEditFace"
WRITER = "/test.Writer/Stream"


class Editor(face_editor_pb2_grpc.FaceEditorServicer):
    def __init__(self) -> None:
        self.calls: Counter = Counter()

    async def EditFace(self, request, context):
        self.calls["EditFace"] += 1
        if request.request_id == "refuse":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "region 'lips' covers 0.00% of the image")
        return face_editor_pb2.EditFaceResponse(request_id=request.request_id)

    async def StreamEditFace(self, request, context):
        self.calls["StreamEditFace"] += 1
        yield face_editor_pb2.EditFaceEvent(stage=face_editor_pb2.StageEvent(edit_index=len(request.request_id)))


async def _writer(request: face_editor_pb2.EditFaceRequest, context: grpc.aio.ServicerContext) -> None:
    """A unary-stream servicer in the other style grpc.aio allows: a coroutine calling context.write."""
    for index in range(len(request.request_id)):
        await context.write(face_editor_pb2.EditFaceEvent(stage=face_editor_pb2.StageEvent(edit_index=index)))


def _register(editor: Editor):
    def register(server: grpc.aio.Server) -> None:
        face_editor_pb2_grpc.add_FaceEditorServicer_to_server(editor, server)
        handler = grpc.unary_stream_rpc_method_handler(
            _writer,
            request_deserializer=face_editor_pb2.EditFaceRequest.FromString,
            response_serializer=face_editor_pb2.EditFaceEvent.SerializeToString,
        )
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Writer", {"Stream": handler})])

    return register


async def _call(channel: grpc.aio.Channel, method: str, data: bytes, streaming: bool) -> tuple[grpc.StatusCode, object]:
    try:
        if streaming:
            events = [event async for event in channel.unary_stream(method)(data, timeout=5)]
            return grpc.StatusCode.OK, len(events)
        return grpc.StatusCode.OK, await channel.unary_unary(method)(data, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details()


def _valid(request_id: str) -> bytes:
    return face_editor_pb2.EditFaceRequest(request_id=request_id).SerializeToString()


@pytest.mark.parametrize("method, streaming", [(EDIT, False), (STREAM, True), (WRITER, True)])
def test_undecodable_bytes_are_invalid_argument_and_valid_ones_pass(method: str, streaming: bool) -> None:
    editor = Editor()

    async def scenario() -> None:
        async with (
            aio_server(_register(editor), interceptors=[MalformedRequestInterceptor()]) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            code, details = await _call(channel, method, GARBAGE, streaming)
            name = method.rsplit("/", 1)[1]
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert details == (
                f"the {name} request is not a valid protobuf message (3 bytes); "
                "send it with a client generated from faceedit's .proto files"
            )
            assert sum(editor.calls.values()) == 0
            code, result = await _call(channel, method, _valid("abc"), streaming)
            assert code == grpc.StatusCode.OK
            if streaming:
                assert result == (1 if method == STREAM else 3)
            else:
                assert face_editor_pb2.EditFaceResponse.FromString(result).request_id == "abc"

    asyncio.run(scenario())


def test_the_servicers_own_status_passes_through() -> None:
    async def scenario() -> None:
        async with (
            aio_server(_register(Editor()), interceptors=[MalformedRequestInterceptor()]) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            code, details = await _call(channel, EDIT, _valid("refuse"), False)
            assert (code, details) == (grpc.StatusCode.FAILED_PRECONDITION, "region 'lips' covers 0.00% of the image")

    asyncio.run(scenario())


def test_without_the_interceptor_grpc_aio_answers_unknown() -> None:
    """Why the interceptor exists: should grpc.aio ever map decoding failures itself, this fails and it can go."""

    async def scenario() -> None:
        async with (
            aio_server(_register(Editor())) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            code, details = await _call(channel, EDIT, GARBAGE, False)
            assert code == grpc.StatusCode.UNKNOWN and "DecodeError" in str(details)

    asyncio.run(scenario())


def test_behind_authentication_an_unauthenticated_callers_bytes_are_never_decoded(tmp_path: Path) -> None:
    """The order the servers use: [BearerAuthInterceptor, MalformedRequestInterceptor]."""
    token = "tok-123"
    (tmp_path / "tokens").write_text(f"{hash_token(token)}\n")
    interceptors = [BearerAuthInterceptor(TokenStore(tmp_path / "tokens")), MalformedRequestInterceptor()]
    editor = Editor()

    async def scenario() -> None:
        async with (
            aio_server(_register(editor), interceptors=interceptors) as port,
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
            response = await call(_valid("ok"), metadata=bearer_metadata(token), timeout=5)
            assert face_editor_pb2.EditFaceResponse.FromString(response).request_id == "ok"
            assert editor.calls == Counter({"EditFace": 1})

    asyncio.run(scenario())
