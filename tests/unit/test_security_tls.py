"""faceedit.rpc.tls against real grpc.aio servers on loopback: who may connect, what the server presents, and that
rotated certificate files are served to the next connection without restarting the server."""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc.aio as triton
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from faceedit.devstack.devpki import DevPki, write_dev_pki
from faceedit.rpc.channels import dial, dial_sync
from faceedit.rpc.tls import (
    ChannelTls,
    ReloadingServerCredentials,
    TlsConfigError,
    channel_tls,
    load_key_pair,
)
from tests.aioserver import FRESH, add_health, aio_server, health_status, presented_certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return write_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A second, unrelated CA with its own server and client certificates."""
    return write_dev_pki(tmp_path_factory.mktemp("other"))


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def _install(pki: DevPki, cert: Path, key: Path) -> None:
    """Rotation as a file writer does it: each file replaced atomically, certificate first."""
    for source, target in ((pki.server_cert, cert), (pki.server_key, key)):
        shutil.copyfile(source, target.with_suffix(".new"))
        os.replace(target.with_suffix(".new"), target)


async def _status(port: int, tls: ChannelTls | None) -> grpc.StatusCode:
    async with dial(f"localhost:{port}", tls=tls, options=FRESH) as channel:
        return await health_status(channel, timeout=5)


def test_tls_server_refuses_plaintext_and_clients_trusting_another_ca(pki: DevPki, other_pki: DevPki) -> None:
    async def scenario() -> None:
        credentials = ReloadingServerCredentials(pki.server_cert, pki.server_key)
        assert not credentials.mutual
        async with aio_server(add_health, credentials=credentials.credentials) as port:
            assert await _status(port, ChannelTls.from_files(pki.ca_cert)) == grpc.StatusCode.OK
            assert await _status(port, None) == grpc.StatusCode.UNAVAILABLE
            assert await _status(port, ChannelTls.from_files(other_pki.ca_cert)) == grpc.StatusCode.UNAVAILABLE
            presented = await asyncio.to_thread(presented_certificate, port)
            assert presented == _der(pki.server_cert)

    asyncio.run(scenario())


def test_mtls_requires_a_client_certificate_signed_by_the_client_ca(pki: DevPki, other_pki: DevPki) -> None:
    async def scenario() -> None:
        credentials = ReloadingServerCredentials(pki.server_cert, pki.server_key, pki.ca_cert)
        assert credentials.mutual
        async with aio_server(add_health, credentials=credentials.credentials) as port:
            no_cert = ChannelTls.from_files(pki.ca_cert)
            foreign_cert = ChannelTls.from_files(pki.ca_cert, other_pki.client_cert, other_pki.client_key)
            dev_cert = ChannelTls.from_files(pki.ca_cert, pki.client_cert, pki.client_key)
            assert await _status(port, no_cert) == grpc.StatusCode.UNAVAILABLE
            assert await _status(port, foreign_cert) == grpc.StatusCode.UNAVAILABLE
            assert await _status(port, dev_cert) == grpc.StatusCode.OK

    asyncio.run(scenario())


def test_rotated_files_are_presented_to_the_next_connection_without_a_restart(
    pki: DevPki, other_pki: DevPki, tmp_path: Path
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copyfile(pki.server_cert, cert)
    shutil.copyfile(pki.server_key, key)

    async def scenario() -> None:
        credentials = ReloadingServerCredentials(cert, key)
        old_ca, new_ca = ChannelTls.from_files(pki.ca_cert), ChannelTls.from_files(other_pki.ca_cert)
        async with (
            aio_server(add_health, credentials=credentials.credentials) as port,
            dial(f"localhost:{port}", tls=old_ca, options=FRESH) as open_before,
        ):
            assert await health_status(open_before) == grpc.StatusCode.OK
            _install(other_pki, cert, key)
            assert await asyncio.to_thread(presented_certificate, port) == _der(other_pki.server_cert)
            assert credentials.reloads == 1
            assert await _status(port, new_ca) == grpc.StatusCode.OK
            assert await _status(port, old_ca) == grpc.StatusCode.UNAVAILABLE
            # A connection made before the rotation keeps its TLS session: in-flight traffic is not cut.
            assert await health_status(open_before) == grpc.StatusCode.OK

    asyncio.run(scenario())


def test_a_kubernetes_secret_volume_swap_is_picked_up(pki: DevPki, other_pki: DevPki, tmp_path: Path) -> None:
    """kubelet updates a Secret volume by writing a new timestamped directory and flipping the ..data symlink;
    tls.crt and tls.key are symlinks through ..data, so both change in one rename."""

    def publish(source: DevPki, version: str) -> None:
        directory = tmp_path / version
        directory.mkdir()
        shutil.copyfile(source.server_cert, directory / "tls.crt")
        shutil.copyfile(source.server_key, directory / "tls.key")
        (tmp_path / "..data_tmp").symlink_to(version)
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    publish(pki, "..v1")
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).symlink_to(Path("..data") / name)

    async def scenario() -> None:
        credentials = ReloadingServerCredentials(tmp_path / "tls.crt", tmp_path / "tls.key")
        async with aio_server(add_health, credentials=credentials.credentials) as port:
            assert await asyncio.to_thread(presented_certificate, port) == _der(pki.server_cert)
            publish(other_pki, "..v2")
            assert await asyncio.to_thread(presented_certificate, port) == _der(other_pki.server_cert)
            assert await _status(port, ChannelTls.from_files(other_pki.ca_cert)) == grpc.StatusCode.OK

    asyncio.run(scenario())


def test_a_half_written_rotation_keeps_serving_the_previous_certificate(
    pki: DevPki, other_pki: DevPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copyfile(pki.server_cert, cert)
    shutil.copyfile(pki.server_key, key)

    async def scenario() -> None:
        credentials = ReloadingServerCredentials(cert, key)
        async with aio_server(add_health, credentials=credentials.credentials) as port:
            shutil.copyfile(other_pki.server_cert, cert)  # the new certificate; its key has not arrived yet
            assert await asyncio.to_thread(presented_certificate, port) == _der(pki.server_cert)
            assert await _status(port, ChannelTls.from_files(pki.ca_cert)) == grpc.StatusCode.OK
            assert credentials.reloads == 0
            shutil.copyfile(other_pki.server_key, key)
            assert await asyncio.to_thread(presented_certificate, port) == _der(other_pki.server_cert)
            assert credentials.reloads == 1

    asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.name == "faceedit.tls" and r.levelname == "ERROR"]
    assert len(errors) == 1 and f"TLS key {key} does not belong to certificate {cert}" in errors[0]


def test_sync_channels_and_the_triton_client_use_the_same_credentials(pki: DevPki, other_pki: DevPki) -> None:
    async def triton_outcome(port: int, tls: ChannelTls) -> str:
        client = triton.InferenceServerClient(f"localhost:{port}", **tls.triton_kwargs())
        try:
            await client.is_server_live()
        except InferenceServerException as exc:
            return str(exc.status())
        finally:
            await client.close()
        return "OK"

    async def scenario() -> None:
        credentials = ReloadingServerCredentials(pki.server_cert, pki.server_key, pki.ca_cert)
        mtls = ChannelTls.from_files(pki.ca_cert, pki.client_cert, pki.client_key)
        async with aio_server(add_health, credentials=credentials.credentials) as port:

            def sync_check() -> None:
                with dial_sync(f"localhost:{port}", tls=mtls, options=FRESH) as channel:
                    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

            await asyncio.to_thread(sync_check)
            # The health server does not speak KServe: UNIMPLEMENTED proves the TLS handshake went through.
            assert await triton_outcome(port, mtls) == "StatusCode.UNIMPLEMENTED"
            wrong_ca = ChannelTls.from_files(other_pki.ca_cert, pki.client_cert, pki.client_key)
            assert await triton_outcome(port, wrong_ca) == "StatusCode.UNAVAILABLE"

    asyncio.run(scenario())


def _encrypted_key(pki: DevPki, path: Path) -> Path:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing cert", "TLS certificate {dir}/absent.crt does not exist"),
        ("missing key", "TLS key {dir}/absent.key does not exist"),
        ("cert is a key", "TLS certificate {server_key} is not a PEM certificate"),
        ("key is a cert", "TLS key {server_cert} is not a PEM private key"),
        ("empty cert", "TLS certificate {dir}/empty.crt is empty"),
        ("mismatched", "TLS key {client_key} does not belong to certificate {server_cert}"),
        ("encrypted key", "TLS key {dir}/encrypted.key is encrypted"),
        ("expired", "TLS certificate {old_cert} expired on "),
        ("client CA missing", "client CA {dir}/absent-ca.crt does not exist"),
    ],
)
def test_start_up_errors_are_one_line_naming_the_file(case: str, expected: str, pki: DevPki, tmp_path: Path) -> None:
    (tmp_path / "empty.crt").write_text("")
    old = write_dev_pki(
        tmp_path / "old", now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=60), validity_days=30
    )
    cert, key, client_ca = pki.server_cert, pki.server_key, None
    if case == "missing cert":
        cert = tmp_path / "absent.crt"
    elif case == "missing key":
        key = tmp_path / "absent.key"
    elif case == "cert is a key":
        cert = pki.server_key
    elif case == "key is a cert":
        key = pki.server_cert
    elif case == "empty cert":
        cert = tmp_path / "empty.crt"
    elif case == "mismatched":
        key = pki.client_key
    elif case == "encrypted key":
        key = _encrypted_key(pki, tmp_path / "encrypted.key")
    elif case == "expired":
        cert, key = old.server_cert, old.server_key
    elif case == "client CA missing":
        client_ca = tmp_path / "absent-ca.crt"
    message = expected.format(
        dir=tmp_path,
        server_key=pki.server_key,
        server_cert=pki.server_cert,
        client_key=pki.client_key,
        old_cert=old.server_cert,
    )
    with pytest.raises(TlsConfigError) as excinfo:
        ReloadingServerCredentials(cert, key, client_ca)
    assert str(excinfo.value).startswith(message) and "\n" not in str(excinfo.value)


def test_client_file_combinations(pki: DevPki) -> None:
    assert channel_tls(None) is None
    with pytest.raises(TlsConfigError, match="without a CA"):
        channel_tls(None, pki.client_cert, pki.client_key)
    with pytest.raises(TlsConfigError, match=f"a client certificate \\({pki.client_cert}\\) needs its key too"):
        channel_tls(pki.ca_cert, pki.client_cert)
    with pytest.raises(TlsConfigError, match="needs its certificate too"):
        channel_tls(pki.ca_cert, key=pki.client_key)
    with pytest.raises(TlsConfigError, match=f"CA certificate {pki.ca_key} is not a PEM certificate"):
        channel_tls(pki.ca_key)
    mutual = channel_tls(pki.ca_cert, pki.client_cert, pki.client_key, server_name="inpainter")
    assert mutual is not None and mutual.mutual
    assert mutual.options() == [("grpc.ssl_target_name_override", "inpainter")]
    assert "BEGIN" not in repr(mutual)  # key material stays out of logs


def test_load_key_pair_accepts_a_chain_file(pki: DevPki, tmp_path: Path) -> None:
    """cert-manager's tls.crt holds the leaf followed by its issuers."""
    chain = tmp_path / "chain.crt"
    chain.write_bytes(pki.server_cert.read_bytes() + pki.ca_cert.read_bytes())
    cert_pem, key_pem = load_key_pair(chain, pki.server_key)
    assert cert_pem.count(b"BEGIN CERTIFICATE") == 2 and b"PRIVATE KEY" in key_pem
