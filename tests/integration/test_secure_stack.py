"""`faceedit up --secure` on real processes: TLS at the front door with a bearer token, mTLS to the inpainter and
Triton. Strangers (plaintext, another CA, no client certificate, no or a wrong token) are refused before any work;
the right credentials edit end to end through the real CLI; probes reach health on the plaintext health port."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from faceedit.core.imageio import encode_image
from faceedit.devstack.devpki import write_dev_pki
from faceedit.devstack.ports import free_port
from faceedit.devstack.process import health_status
from faceedit.devstack.stack import LocalStack, StackConfig
from faceedit.rpc.auth import bearer_metadata
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, dial_sync
from faceedit.rpc.tls import ChannelTls
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.helpers import FACEEDIT

SERVING = health_pb2.HealthCheckResponse.SERVING
WORK = ("faceedit_stage_seconds_count", "faceedit_inpainter_requests_total", "nv_inference_request_success")


def _total(url: str, name: str) -> float:
    """The sum of every sample of one metric at a /metrics URL."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


@pytest.fixture(scope="module")
def secure(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("secure")
    config = StackConfig(
        models_dir=models_dir, port=free_port(), parser_size=128, working_size=128, secure_dir=root / "pki",
        workdir=root / "logs", ready_timeout_s=180,
    )  # fmt: skip
    stack = LocalStack(config).start(log=lambda line: None)
    try:
        yield stack
    finally:
        stack.stop()


def _urls(stack: LocalStack) -> list[str]:
    return [stack.orchestrator.metrics_url, stack.inpainters[0].metrics_url, stack.tritons[0].metrics_url]


def _work_done(stack: LocalStack) -> dict[str, float]:
    return {name: _total(url, name) for name, url in zip(WORK, _urls(stack), strict=True)}


def _image() -> bytes:
    return encode_image(np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8))


def _edit() -> fe.EditFaceRequest:
    mask = np.zeros((96, 96), np.uint8)
    mask[30:60, 30:60] = 255
    options = types_pb2.MaskOptions(
        classes=["skin"], extra_mask=types_pb2.EncodedImage(data=encode_image(mask)), merge=types_pb2.MASK_MERGE_REPLACE
    )
    edit = fe.Edit(prompt="a face", num_inference_steps=2, mask=options)
    return fe.EditFaceRequest(image=types_pb2.EncodedImage(data=_image()), edits=[edit])


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _client_tls(stack: LocalStack, *, mutual: bool) -> ChannelTls:
    pki = stack.pki
    if mutual:
        return ChannelTls.from_files(pki.ca_cert, pki.client_cert, pki.client_key)
    return ChannelTls.from_files(pki.ca_cert)


def test_strangers_are_refused_at_every_hop(secure: LocalStack, tmp_path: Path) -> None:
    attributes = fe.ListAttributesRequest()
    token = bearer_metadata(secure.pki.read_token())
    with dial_sync(secure.address) as plaintext:
        stub = face_editor_pb2_grpc.FaceEditorStub(plaintext)
        assert _code(lambda: stub.ListAttributes(attributes, metadata=token, timeout=5)) == grpc.StatusCode.UNAVAILABLE
    other = write_dev_pki(tmp_path / "other")
    with dial_sync(secure.address, tls=ChannelTls.from_files(other.ca_cert), token=other.read_token()) as channel:
        stub = face_editor_pb2_grpc.FaceEditorStub(channel)
        assert _code(lambda: stub.ListAttributes(attributes, timeout=5)) == grpc.StatusCode.UNAVAILABLE

    # The inpainter and Triton require a client certificate from our CA; the server certificate alone is not enough.
    check = health_pb2.HealthCheckRequest()
    for address in (secure.inpainters[0].address, secure.tritons[0].grpc_url):
        with dial_sync(address, tls=_client_tls(secure, mutual=False)) as channel:
            probe = health_pb2_grpc.HealthStub(channel)
            assert _code(lambda probe=probe: probe.Check(check, timeout=5)) == grpc.StatusCode.UNAVAILABLE
    with dial_sync(secure.inpainters[0].address, tls=_client_tls(secure, mutual=True)) as channel:
        assert health_pb2_grpc.HealthStub(channel).Check(check, timeout=5).status == SERVING


def test_no_token_or_a_wrong_one_is_unauthenticated_before_any_work(secure: LocalStack) -> None:
    before = _work_done(secure)
    rejected = _total(secure.orchestrator.metrics_url, "faceedit_auth_rejections_total")
    parse = fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=_image()))
    codes = []
    for token in (None, "wrong-token"):
        with dial_sync(secure.address, tls=_client_tls(secure, mutual=False), token=token) as channel:
            stub = face_editor_pb2_grpc.FaceEditorStub(channel)
            codes += [
                _code(lambda stub=stub: stub.EditFace(_edit(), timeout=10)),
                _code(lambda stub=stub: list(stub.StreamEditFace(_edit(), timeout=10))),
                _code(lambda stub=stub: stub.ParseFace(parse, timeout=10)),
                _code(lambda stub=stub: stub.ListAttributes(fe.ListAttributesRequest(), timeout=10)),
            ]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 8
    assert _work_done(secure) == before  # no decode, no parse on Triton, no inpaint
    assert _total(secure.orchestrator.metrics_url, "faceedit_auth_rejections_total") == rejected + 8


def test_the_right_credentials_edit_end_to_end_through_the_cli(secure: LocalStack, tmp_path: Path) -> None:
    portrait = tmp_path / "in.png"
    portrait.write_bytes(_image())
    credentials = ["--server", secure.address, "--secure", str(secure.config.secure_dir)]
    parsed = subprocess.run([*FACEEDIT, "parse", str(portrait), *credentials], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    present = parsed.stdout.split("attributes present:")[1].split(",")[0].strip()  # the random parser's pick
    before = _work_done(secure)
    edited = tmp_path / "out.png"
    # The CLI over TLS with the token; the orchestrator over mTLS to the inpainter and to Triton.
    run = subprocess.run(
        [*FACEEDIT, "edit", str(portrait), "-e", f"{present}=a new look", "-o", str(edited), "--steps", "2",
         *credentials],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert edited.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    after = _work_done(secure)
    assert all(after[name] > before[name] for name in WORK), (before, after)
    # The env-var equivalents, and a client without the token refused in one line.
    pki = secure.pki
    env = {"FACEEDIT_SERVER": secure.address, "FACEEDIT_CA": str(pki.ca_cert), "FACEEDIT_TOKEN": pki.read_token()}
    listed = subprocess.run([*FACEEDIT, "attributes"], capture_output=True, text=True, env=_env(env), timeout=60)
    assert listed.returncode == 0 and "hair" in listed.stdout, listed.stderr
    del env["FACEEDIT_TOKEN"]
    refused = subprocess.run([*FACEEDIT, "attributes"], capture_output=True, text=True, env=_env(env), timeout=60)
    assert refused.returncode == 1 and refused.stderr.startswith("faceedit: UNAUTHENTICATED"), refused.stderr


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FACEEDIT_")} | extra


def test_probes_reach_health_on_the_plaintext_port_and_reflection_is_off(secure: LocalStack) -> None:
    for process, service in ((secure.orchestrator, "faceedit.v1.FaceEditor"), (secure.inpainters[0], "")):
        assert health_status(process.health_address, "liveness") == SERVING
        assert health_status(process.health_address, service) == SERVING
    with dial_sync(secure.orchestrator.health_address) as plain:  # the health port serves health and nothing else
        stub = face_editor_pb2_grpc.FaceEditorStub(plain)
        assert (
            _code(lambda: stub.ListAttributes(fe.ListAttributesRequest(), timeout=5)) == grpc.StatusCode.UNIMPLEMENTED
        )
    tls, token = _client_tls(secure, mutual=False), secure.pki.read_token()
    with dial_sync(secure.address, tls=tls, token=token, max_message_bytes=FRONT_DOOR_MAX_MESSAGE_BYTES) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        assert _code(lambda: list(reflection.ServerReflectionInfo(iter([ask]), timeout=5))) == (
            grpc.StatusCode.UNIMPLEMENTED
        )
