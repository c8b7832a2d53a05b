"""Real grpc.aio servers on loopback for the security and fuzz tests, always stopped by the test that starts them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

Register = Callable[[grpc.aio.Server], None]
# A fresh connection per channel: a test about handshakes must not reuse another channel's connection.
FRESH = [("grpc.use_local_subchannel_pool", 1)]


def add_health(server: grpc.aio.Server) -> None:
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)


@contextlib.asynccontextmanager
async def aio_server(
    *register: Register,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> AsyncIterator[int]:
    """A started grpc.aio server on 127.0.0.1 (TLS with credentials); yields its port, stops it on exit."""
    server = grpc.aio.server(interceptors=list(interceptors))
    for add in register:
        add(server)
    address = "127.0.0.1:0"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


@contextlib.contextmanager
def threaded_aio_server(*register: Register, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> Iterator[int]:
    """The same server on an event loop in a thread of its own, for synchronous clients (hypothesis tests)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    context = aio_server(*register, interceptors=interceptors)
    try:
        port = asyncio.run_coroutine_threadsafe(context.__aenter__(), loop).result(timeout=30)
        try:
            yield port
        finally:
            asyncio.run_coroutine_threadsafe(context.__aexit__(None, None, None), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


async def health_status(channel: grpc.aio.Channel, timeout: float = 5) -> grpc.StatusCode:
    """OK when a Health.Check on channel succeeds, else the status code it failed with."""
    try:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def presented_certificate(port: int, client_cert: Path | None = None, client_key: Path | None = None) -> bytes:
    """DER of the certificate the server on 127.0.0.1:port presents to a new TLS connection (blocking; call it
    through asyncio.to_thread when the server runs on this thread's loop)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we only look at what is presented
    context.set_alpn_protocols(["h2"])
    if client_cert is not None:
        context.load_cert_chain(client_cert, client_key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, context.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der
