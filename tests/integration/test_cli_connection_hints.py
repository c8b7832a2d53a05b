"""A client command whose connection never comes up says what to do, in one line: `faceedit up` first when nothing
listens, `--secure DIR` when the server speaks TLS and the client did not."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from faceedit.devstack.devpki import DevPki, write_dev_pki
from faceedit.devstack.ports import free_port
from tests.helpers import run_faceedit


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, DevPki]]:
    """A real TLS gRPC server on loopback with the development PKI `faceedit up --secure DIR` writes."""
    pki = write_dev_pki(tmp_path / "secure")
    server = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    credentials = grpc.ssl_server_credentials([(pki.server_key.read_bytes(), pki.server_cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}", pki
    finally:
        server.stop(None)


def _one_line(result) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_no_stack_running_says_start_it_first() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    line = _one_line(run_faceedit("attributes", "--server", address, timeout=60))
    assert line.startswith("faceedit: UNAVAILABLE: nothing answers at " + address)
    assert "`faceedit up` first" in line and "Connection refused" in line


def test_plaintext_client_against_tls_says_secure_dir(tls_server: tuple[str, DevPki]) -> None:
    address, pki = tls_server
    line = _one_line(run_faceedit("attributes", "--server", address, timeout=60))
    assert f"{address} closed a plaintext connection" in line and "--secure DIR" in line
    # The advice works: with the directory the connection comes up, and the call fails only because this server
    # has no FaceEditor service.
    result = run_faceedit("attributes", "--server", address, "--secure", str(pki.directory), timeout=60)
    assert result.returncode == 1 and "UNIMPLEMENTED" in result.stderr, result.stderr
