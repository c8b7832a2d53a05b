"""Every gRPC channel faceedit opens is built here, so every hop gets the same treatment: message-size limits both
ends agree on, keepalive the servers accept, per-call round-robin balancing over every address a target resolves
to, retries of UNAVAILABLE with throttling, client-side health checking, and TLS when configured.

Used by the orchestrator (its hops to Triton and the inpainter), the CLI, the benchmarks and the tests.

Why per-call balancing: gRPC is HTTP/2, one long-lived connection carries every call, and a Kubernetes ClusterIP
Service balances connections, not calls. Dialling `dns:///name.namespace.svc.cluster.local:port` on a headless
Service resolves every pod's address; round_robin then spreads calls over all of them, and the servers' maximum
connection age makes clients re-resolve, so pods added by an autoscaler get traffic within minutes.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from faceedit.rpc.auth import SyncBearerInterceptor, aio_bearer_interceptors
from faceedit.rpc.tls import ChannelTls
from faceedit.rpc.workers import WorkerPool, parsed, serialized

# gRPC's default is 4 MiB; a 1024x1024 PNG or a raw 1024x1024 RGB frame (3 MiB plus mask) gets close to it.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20
# The front door carries the caller's photo and the edited one, plus masks and parse maps when asked: a 24 MP PNG
# response with return_masks is ~100 MiB. Internal hops stay bounded by the models' canvases.
FRONT_DOOR_MAX_MESSAGE_BYTES = 256 * 2**20
# Clients ping idle connections every 30 s; servers accept pings every 10 s. A client pinging faster than the
# server allows gets GOAWAY "too_many_pings", so the first must stay >= the second (Triton is configured alike).
KEEPALIVE_TIME_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000
SERVER_MIN_PING_INTERVAL_MS = 10_000
# gRPC replays a failed call only if its request fits this buffer (default 256 KiB; an Inpaint region is 1-16 MB).
RETRY_BUFFER_BYTES = 64 * 2**20
MAX_RETRIES = 4  # gRPC caps attempts at 5
INPAINTER_SERVICE = "faceedit.v1.Inpainter"
TRITON_SERVICE = "inference.GRPCInferenceService"
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$")


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """Message-size options for servers and channels alike, so both ends agree on the limits."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def service_config(
    *, retry_services: Sequence[str] = (), retries: int = 3, health_service: str | None = None
) -> dict[str, Any]:
    """round_robin over every resolved address; UNAVAILABLE retried up to `retries` more times (backoff 0.1-2 s)
    for retry_services, throttled so a struggling fleet is not hammered (retries stop once about half of the
    recent calls failed, and resume as calls succeed); with health_service, only backends reporting it SERVING
    get calls (a loading or draining replica gets none)."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retry_services and retries > 0:
        config["methodConfig"] = [
            {
                "name": [{"service": service} for service in retry_services],
                "retryPolicy": {
                    "maxAttempts": min(MAX_RETRIES, retries) + 1,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
        config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    if health_service is not None:
        config["healthCheckConfig"] = {"serviceName": health_service}
    return config


def client_options(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    retry_services: Sequence[str] = (),
    retries: int = 3,
    health_service: str | None = None,
) -> list[tuple[str, Any]]:
    """Every option of a faceedit channel: message sizes, keepalive, retries, the service config."""
    config = service_config(retry_services=retry_services, retries=retries, health_service=health_service)
    return [
        *channel_options(max_message_bytes),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 1),
        ("grpc.per_rpc_retry_buffer_size", RETRY_BUFFER_BYTES),
        ("grpc.service_config", json.dumps(config)),
    ]


def server_options(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    max_connection_age_s: float = 0.0,
    max_connection_age_grace_s: float = 0.0,
) -> list[tuple[str, Any]]:
    """A faceedit server's options: message sizes, the pings it accepts (see KEEPALIVE_TIME_MS), and a maximum
    connection age (0: none) after which clients reconnect and re-resolve."""
    options = [
        *channel_options(max_message_bytes),
        ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_PING_INTERVAL_MS),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if max_connection_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_s * 1000)),
        ]
    return options


def target_problem(target: str) -> str | None:
    """Why target is not a gRPC target faceedit can dial (host:port, dns:///host:port, ipv4:/ipv6: address
    lists, unix:path), or None."""
    if target.startswith("unix:"):
        return None if len(target) > len("unix:") else "unix: needs a socket path"
    for scheme in ("ipv4:", "ipv6:"):
        if target.startswith(scheme):
            bad = [a for a in target[len(scheme) :].split(",") if not _HOST_PORT.match(a)]
            return f"expected {scheme}host:port[,host:port...], got {target!r}" if bad else None
    if target.startswith("dns:"):
        endpoint = target.split("/")[-1] if target.startswith("dns://") else target[len("dns:") :]
        return None if _HOST_PORT.match(endpoint) else f"expected dns:///host:port, got {target!r}"
    return None if _HOST_PORT.match(target) else f"expected host:port, dns:///host:port or ipv4:..., got {target!r}"


def dial(
    target: str,
    *,
    tls: ChannelTls | None = None,
    token: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    retry_services: Sequence[str] = (),
    retries: int = 3,
    health_service: str | None = None,
    interceptors: Sequence[Any] = (),
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A grpc.aio channel to target with faceedit's options (see client_options) plus options; TLS when tls is
    given; every call carries `authorization: Bearer token` when token is given."""
    channel_args = [
        *client_options(
            max_message_bytes, retry_services=retry_services, retries=retries, health_service=health_service
        ),
        *options,
    ]
    interceptors = [*interceptors, *(aio_bearer_interceptors(token) if token is not None else ())]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=channel_args, interceptors=interceptors or None)
    return grpc.aio.secure_channel(
        target, tls.credentials(), options=[*channel_args, *tls.options()], interceptors=interceptors or None
    )


def dial_sync(
    target: str,
    *,
    tls: ChannelTls | None = None,
    token: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """The same as a synchronous channel (the CLI)."""
    channel_args = [*client_options(max_message_bytes), *options]
    if tls is None:
        channel = grpc.insecure_channel(target, options=channel_args)
    else:
        channel = grpc.secure_channel(target, tls.credentials(), options=[*channel_args, *tls.options()])
    return channel if token is None else grpc.intercept_channel(channel, SyncBearerInterceptor(token))


def triton_client(url: str, *, tls: ChannelTls | None = None, retries: int = 3):  # tritonclient.grpc.aio client
    """tritonclient's async client on a faceedit channel: its channel_args replace all of its own defaults, so
    they carry the message limits and keepalive too, and the retry policy covers inference calls."""
    import tritonclient.grpc.aio as triton

    options = client_options(retry_services=(TRITON_SERVICE,), retries=retries)
    if tls is None:
        return triton.InferenceServerClient(url, channel_args=options)
    return triton.InferenceServerClient(url, channel_args=[*options, *tls.options()], **tls.triton_kwargs())


class OffloadedStub:
    """Calls to one gRPC service whose large requests are serialized, and large responses parsed, on a worker
    pool instead of the caller's event loop (the orchestrator's Inpaint calls carry megabytes each way)."""

    def __init__(self, channel: grpc.aio.Channel, service: ServiceDescriptor, pool: WorkerPool) -> None:
        self._pool = pool
        self._calls = {}
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            factory = channel.unary_stream if method.server_streaming else channel.unary_unary
            # No serializers: bytes go out and come back; the pool does the protobuf work.
            self._calls[method.name] = (factory(path), message_factory.GetMessageClass(method.output_type))

    async def _wire(self, request: Message | bytes) -> bytes:
        return request if isinstance(request, bytes) else await serialized(request, self._pool)

    async def unary(self, method: str, request: Message | bytes, **kwargs: Any) -> Message:
        """One call; request is a message or its wire bytes (serialized where it was built, on the pool)."""
        call, response_type = self._calls[method]
        return await parsed(response_type, await call(await self._wire(request), **kwargs), self._pool)

    async def stream(self, method: str, request: Message | bytes, **kwargs: Any) -> AsyncIterator[Message]:
        factory, response_type = self._calls[method]
        call = factory(await self._wire(request), **kwargs)
        try:
            async for data in call:
                yield await parsed(response_type, data, self._pool)
        finally:
            call.cancel()  # a consumer that stops early must not leave the stream running
