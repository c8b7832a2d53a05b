"""faceedit.rpc.auth: the token-hash file, the constant-time check, and the interceptor on a real grpc.aio server:
unauthenticated calls are refused before their handler runs (or their bytes are decoded); health stays open."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from faceedit.rpc.auth import (
    BearerAuthInterceptor,
    SyncBearerInterceptor,
    TokenFileError,
    TokenStore,
    aio_bearer_interceptors,
    bearer_metadata,
    bearer_token,
    hash_token,
    parse_token_hashes,
    read_token_file,
)
from faceedit.v1 import face_editor_pb2, face_editor_pb2_grpc
from tests.aioserver import add_health, aio_server, health_status

TOKEN = "s3cret-token_for-tests"
OTHER = "another-token"
LIST = "/faceedit.v1.FaceEditor/ListAttributes"
STREAM = "/faceedit.v1.FaceEditor/StreamEditFace"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _token_file(path: Path, *tokens: str) -> Path:
    path.write_text("# faceedit tokens\n\n" + "".join(f"{hash_token(t)}  label {i}\n" for i, t in enumerate(tokens)))
    return path


def test_hash_token_is_the_sha256sum_of_the_token() -> None:
    printed = subprocess.run(["sha256sum"], input=TOKEN.encode(), capture_output=True, check=True).stdout.decode()
    assert hash_token(TOKEN) == printed.split()[0]


def test_parse_skips_comments_blank_lines_and_labels() -> None:
    text = f"# header\n\n  {hash_token('a')}  ci-bot\n{hash_token('b')}\n{hash_token('a')} -\n"
    assert parse_token_hashes(text) == (hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest())


@pytest.mark.parametrize(
    "line, hint",
    [
        (TOKEN, f"found {len(TOKEN)} characters"),
        (hash_token("x").upper(), "upper-case"),
        (hash_token("x")[:-1], "found 63 characters"),
    ],
)
def test_a_malformed_line_is_named_by_number_never_quoted(line: str, hint: str) -> None:
    with pytest.raises(TokenFileError) as excinfo:
        parse_token_hashes(f"# ok\n{hash_token('a')}\n{line}\n", "tokens.sha256")
    message = str(excinfo.value)
    assert message.startswith("tokens.sha256 line 3: expected the lowercase hex SHA-256") and hint in message
    assert line not in message and "\n" not in message


def test_start_up_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=f"token file {tmp_path}/absent does not exist"):
        TokenStore(tmp_path / "absent")
    (tmp_path / "empty").write_text("# nobody yet\n")
    with pytest.raises(TokenFileError, match="holds no token hash"):
        TokenStore(tmp_path / "empty")
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    with pytest.raises(TokenFileError, match="is not UTF-8"):
        TokenStore(tmp_path / "binary")


def test_verify_accepts_exactly_the_stored_tokens(tmp_path: Path) -> None:
    store = TokenStore(_token_file(tmp_path / "t", TOKEN, OTHER))
    assert len(store) == 2
    assert store.verify(TOKEN) and store.verify(OTHER)
    assert not store.verify("") and not store.verify(TOKEN + "x") and not store.verify(hash_token(TOKEN))


def test_reload_adds_and_revokes_after_the_check_interval(tmp_path: Path) -> None:
    clock = Clock()
    path = _token_file(tmp_path / "t", TOKEN)
    store = TokenStore(path, check_interval=5.0, clock=clock)
    _token_file(path, OTHER)  # TOKEN revoked, OTHER added
    clock.now = 4.0
    assert store.verify(TOKEN) and not store.verify(OTHER)  # not looked at again yet
    clock.now = 5.0
    assert store.verify(OTHER) and not store.verify(TOKEN)
    assert store.reloads == 1


def test_a_broken_reload_keeps_the_previous_tokens_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    path = _token_file(tmp_path / "t", TOKEN)
    store = TokenStore(path, check_interval=1.0, clock=clock)
    path.write_text(f"{hash_token(OTHER)}\n{TOKEN}\n")  # a raw token pasted by mistake on line 2
    for moment in (1.0, 2.0, 3.0):
        clock.now = moment
        assert store.verify(TOKEN) and not store.verify(OTHER)
    errors = [r.getMessage() for r in caplog.records if r.name == "faceedit.auth" and r.levelname == "ERROR"]
    assert errors == [f"keeping the 1 previous token hash(es): {path} line 2: " + errors[0].split(" line 2: ")[1]]
    assert TOKEN not in errors[0]
    path.unlink()
    clock.now = 4.0
    assert store.verify(TOKEN)
    _token_file(path, OTHER)
    clock.now = 5.0
    assert store.verify(OTHER) and not store.verify(TOKEN)


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ((), (None, "missing")),
        ((("x-other", "1"),), (None, "missing")),
        ((("authorization", f"Bearer {TOKEN}"),), (TOKEN, "")),
        ((("authorization", f"bearer   {TOKEN} "),), (TOKEN, "")),
        ((("authorization", f"Basic {TOKEN}"),), (None, "malformed")),
        ((("authorization", "Bearer "),), (None, "malformed")),
        ((("authorization", TOKEN),), (None, "malformed")),
        ((("authorization", f"Bearer {TOKEN}"), ("authorization", f"Bearer {OTHER}")), (None, "malformed")),
    ],
)
def test_bearer_token_from_metadata(metadata: tuple, expected: tuple) -> None:
    assert bearer_token(metadata) == expected


class CountingEditor(face_editor_pb2_grpc.FaceEditorServicer):
    """Counts the handler runs: a refused call must leave its count at zero."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()

    async def ListAttributes(self, request, context):
        self.calls["ListAttributes"] += 1
        return face_editor_pb2.ListAttributesResponse(default_seed=7)

    async def StreamEditFace(self, request, context) -> AsyncIterator[face_editor_pb2.EditFaceEvent]:
        self.calls["StreamEditFace"] += 1
        for index in range(2):
            yield face_editor_pb2.EditFaceEvent(stage=face_editor_pb2.StageEvent(edit_index=index))


def _server_parts(store: TokenStore, rejections: list[tuple[str, str]]):
    editor = CountingEditor()

    def register(server: grpc.aio.Server) -> None:
        face_editor_pb2_grpc.add_FaceEditorServicer_to_server(editor, server)
        add_health(server)
        reflection.enable_server_reflection(("faceedit.v1.FaceEditor", reflection.SERVICE_NAME), server)

    interceptor = BearerAuthInterceptor(store, on_reject=lambda method, reason: rejections.append((method, reason)))
    return editor, register, interceptor


async def _code(call) -> tuple[grpc.StatusCode, str]:
    try:
        result = call()
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_interceptor_refuses_before_the_handler_and_leaves_health_open(tmp_path: Path) -> None:
    store = TokenStore(_token_file(tmp_path / "t", TOKEN), check_interval=0)
    rejections: list[tuple[str, str]] = []
    editor, register, interceptor = _server_parts(store, rejections)
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED

    async def scenario() -> None:
        async with (
            aio_server(register, interceptors=[interceptor]) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = face_editor_pb2_grpc.FaceEditorStub(channel)
            request = face_editor_pb2.ListAttributesRequest()
            edit = face_editor_pb2.EditFaceRequest()
            missing = await _code(lambda: stub.ListAttributes(request, timeout=5))
            assert missing == (
                unauthenticated,
                "missing credentials: send metadata 'authorization: Bearer <token>'",
            )
            wrong = await _code(lambda: stub.ListAttributes(request, metadata=bearer_metadata(OTHER), timeout=5))
            assert wrong == (unauthenticated, "invalid token")
            basic = await _code(lambda: stub.ListAttributes(request, metadata=(("authorization", "Basic x"),)))
            assert basic[0] == unauthenticated and basic[1].startswith("malformed credentials")
            streamed = await _code(lambda: stub.StreamEditFace(edit, metadata=bearer_metadata(OTHER), timeout=5))
            assert streamed == (unauthenticated, "invalid token")
            # Not even decoded: garbage bytes without a token get UNAUTHENTICATED, not a decoding error.
            raw = channel.unary_unary(LIST)
            assert (await _code(lambda: raw(b"\xff\xff\xff", timeout=5)))[0] == unauthenticated
            assert editor.calls == Counter()

            ok = await _code(lambda: stub.ListAttributes(request, metadata=bearer_metadata(TOKEN), timeout=5))
            assert ok[0] == grpc.StatusCode.OK
            events = [e async for e in stub.StreamEditFace(edit, metadata=bearer_metadata(TOKEN), timeout=5)]
            assert len(events) == 2
            assert editor.calls == Counter({"ListAttributes": 1, "StreamEditFace": 1})

            assert await health_status(channel) == grpc.StatusCode.OK
            listed = [
                r
                async for r in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
                )
            ]
            services = {s.name for s in listed[0].list_services_response.service}
            assert "faceedit.v1.FaceEditor" in services

    asyncio.run(scenario())
    assert rejections == [
        (LIST, "missing"),
        (LIST, "invalid"),
        (LIST, "malformed"),
        (STREAM, "invalid"),
        (LIST, "missing"),
    ]


def test_a_token_added_to_the_file_is_accepted_and_a_removed_one_refused_without_restart(tmp_path: Path) -> None:
    path = _token_file(tmp_path / "t", TOKEN)
    store = TokenStore(path, check_interval=0)
    editor, register, interceptor = _server_parts(store, [])

    async def scenario() -> None:
        async with (
            aio_server(register, interceptors=[interceptor]) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = face_editor_pb2_grpc.FaceEditorStub(channel)

            async def code(token: str) -> grpc.StatusCode:
                call = lambda: stub.ListAttributes(  # noqa: E731
                    face_editor_pb2.ListAttributesRequest(), metadata=bearer_metadata(token), timeout=5
                )
                return (await _code(call))[0]

            assert await code(OTHER) == grpc.StatusCode.UNAUTHENTICATED
            _token_file(path, TOKEN, OTHER)
            assert await code(OTHER) == grpc.StatusCode.OK
            _token_file(path, OTHER)
            assert await code(TOKEN) == grpc.StatusCode.UNAUTHENTICATED
            assert await code(OTHER) == grpc.StatusCode.OK

    asyncio.run(scenario())
    assert store.reloads == 2 and editor.calls["ListAttributes"] == 2


def test_client_interceptors_add_the_token(tmp_path: Path) -> None:
    store = TokenStore(_token_file(tmp_path / "t", TOKEN), check_interval=0)
    editor, register, interceptor = _server_parts(store, [])
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")

    async def scenario() -> None:
        async with aio_server(register, interceptors=[interceptor]) as port:
            target = f"127.0.0.1:{port}"
            token = read_token_file(token_file)
            async with grpc.aio.insecure_channel(target, interceptors=aio_bearer_interceptors(token)) as channel:
                stub = face_editor_pb2_grpc.FaceEditorStub(channel)
                response = await stub.ListAttributes(face_editor_pb2.ListAttributesRequest(), timeout=5)
                assert response.default_seed == 7
                events = [e async for e in stub.StreamEditFace(face_editor_pb2.EditFaceRequest(), timeout=5)]
                assert len(events) == 2

            def sync_call() -> int:
                with grpc.insecure_channel(target) as plain:
                    channel = grpc.intercept_channel(plain, SyncBearerInterceptor(token))
                    stub = face_editor_pb2_grpc.FaceEditorStub(channel)
                    return stub.ListAttributes(face_editor_pb2.ListAttributesRequest(), timeout=5).default_seed

            assert await asyncio.to_thread(sync_call) == 7

    asyncio.run(scenario())
    assert editor.calls == Counter({"ListAttributes": 2, "StreamEditFace": 1})


def test_tokens_that_cannot_be_sent_are_refused_on_the_client(tmp_path: Path) -> None:
    for bad in ("", "two words", "tab\there", "é"):
        with pytest.raises(ValueError, match="printable ASCII"):
            bearer_metadata(bad)
    (tmp_path / "token").write_text("\n")
    with pytest.raises(ValueError, match=f"token file {tmp_path}/token: a token must be"):
        read_token_file(tmp_path / "token")
    with pytest.raises(ValueError, match=f"cannot read token file {tmp_path}/absent"):
        read_token_file(tmp_path / "absent")
