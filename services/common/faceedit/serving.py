"""gRPC server plumbing shared by the inpainter and the orchestrator: message sizes, health, reflection,
metrics and the mapping from core errors to status codes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from faceedit.core.errors import CoverageError, FaceEditError

# gRPC's default is 4 MiB; a 1024x1024 PNG or a raw 1024x1024 RGB frame (3 MiB plus mask) gets close to it.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """Options for servers and channels alike, so both ends agree on the size limits."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status a caller should see for a core error; anything unexpected is INTERNAL."""
    if isinstance(exc, CoverageError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, FaceEditError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    await context.abort(status_for(exc), str(exc))
    raise AssertionError("unreachable: context.abort raises")


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: HealthServicer
    port: int
    service_names: tuple[str, ...]

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)


async def start_grpc_server(
    register: Iterable[Callable[[grpc.aio.Server], None]],
    service_names: Iterable[str],
    *,
    host: str,
    port: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> RunningServer:
    """Start a grpc.aio server with health (NOT_SERVING until the caller says otherwise) and reflection.

    port 0 binds a free port; the bound port is returned in RunningServer.port.
    """
    names = tuple(service_names)
    server = grpc.aio.server(options=channel_options(max_message_bytes))
    for add in register:
        add(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    running = RunningServer(server, health, bound, names)
    await running.set_serving(False)
    await server.start()
    return running


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> int | None:
    """Expose registry on http://host:port/metrics; port 0 picks a free port, -1 disables. Returns the port."""
    if port < 0:
        return None
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server.server_port


async def start_service(
    register: Callable[[grpc.aio.Server], None], service_name: str, args: Any, registry: CollectorRegistry
) -> tuple[RunningServer, int | None]:
    """A service's gRPC server and its /metrics endpoint, from its parsed flags (host, port, metrics_port,
    max_message_bytes). Returns the server and the metrics port (None when disabled)."""
    running = await start_grpc_server(
        [register], [service_name], host=args.host, port=args.port, max_message_bytes=args.max_message_bytes
    )
    return running, serve_metrics(registry, args.host, args.metrics_port)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so servers drain instead of dying mid-request."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
