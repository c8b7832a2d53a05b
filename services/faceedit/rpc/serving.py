"""gRPC server plumbing shared by the inpainter and the orchestrator: one way to answer a call (status mapping,
metrics), one stream pump, protobuf work off the event loop, health, reflection and metrics endpoints."""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha.reflection import SERVICE_NAME, enable_server_reflection
from prometheus_client import CollectorRegistry, start_http_server

from faceedit.core.errors import FaceEditError, PreconditionError
from faceedit.rpc.channels import DEFAULT_MAX_MESSAGE_BYTES, server_options
from faceedit.rpc.tls import server_credentials
from faceedit.rpc.workers import WorkerPool, parsed, serialized

log = logging.getLogger("faceedit.serving")
T = TypeVar("T")
# The health service name that reports the process alone (liveness probes): it never follows dependencies.
LIVENESS = "liveness"


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status a caller should see for a core error; anything unexpected is INTERNAL."""
    if isinstance(exc, PreconditionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, FaceEditError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


# The trailer of an overload refusal saying when to retry; the orchestrator hands the inpainter's on to its caller.
RETRY_AFTER = "retry-after-ms"


@dataclass(frozen=True)
class Failure:
    """How a call ends when it fails: the status, the message, and trailers (e.g. retry-after-ms)."""

    code: grpc.StatusCode
    message: str
    trailers: tuple[tuple[str, str], ...] = ()


class CallError(Exception):
    """Raised by service code to end the call with exactly this failure."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.message)


def classify_core(exc: Exception, method: str) -> Failure:
    """CallError as given, core errors by status_for; anything else is INTERNAL and logged with its traceback
    (call this inside the except block)."""
    if isinstance(exc, CallError):
        return exc.failure
    code = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("%s failed", method)
        return Failure(code, f"{method} failed: {exc}")
    return Failure(code, str(exc))


Observe = Callable[[str, str, float], None]


async def _abort(context: grpc.aio.ServicerContext, failure: Failure) -> None:
    """End the call with failure's status, message and trailers (context.abort raises)."""
    if failure.trailers:
        context.set_trailing_metadata(failure.trailers)
    await context.abort(failure.code, failure.message)


async def answer(
    context: grpc.aio.ServicerContext,
    method: str,
    work: Callable[[], Awaitable[T]],
    *,
    observe: Observe,
    classify: Callable[[Exception, str], Failure] = classify_core,
) -> T:
    """Run one call's work; end it with classify's status when work raises; observe(method, code, seconds) every
    outcome, cancellations included.

    The call is aborted after the except block, not inside it: an abort raised there would chain the failure's
    traceback, whose frames hold the request's pixels, to the abort, and keep them alive in a reference cycle
    until the cyclic collector runs. Under overload that is most calls.
    """
    started = time.monotonic()
    code = grpc.StatusCode.OK
    try:
        try:
            return await work()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            failure = classify(exc, method)
        code = failure.code
        await _abort(context, failure)
        raise AssertionError("unreachable: context.abort raises")
    finally:
        observe(method, code.name, time.monotonic() - started)


async def answer_stream(
    context: grpc.aio.ServicerContext,
    method: str,
    events: AsyncIterator[T],
    *,
    observe: Observe,
    classify: Callable[[Exception, str], Failure] = classify_core,
) -> AsyncIterator[T]:
    """answer() for server-streaming calls: yield events; end the call with classify's status when they raise;
    observe every outcome.

    It must run in the handler's own task. context.abort sends the status at once, and from another task it can
    race the handler's send of the previous event: about 1 call in 60 then never got its status and hung until
    the caller's deadline (measured: 16 of 1,000 streams refused by validation).
    """
    started = time.monotonic()
    code = grpc.StatusCode.OK
    try:
        try:
            async for event in events:
                yield event
            return
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            failure = classify(exc, method)
        code = failure.code
        await _abort(context, failure)
    finally:
        observe(method, code.name, time.monotonic() - started)


async def stream_events(work: Callable[[Callable[[Any], None]], Awaitable[None]]) -> AsyncIterator[Any]:
    """Run work(emit) and yield whatever it emits, in order, as it emits it; end when work returns, re-raising
    its failure here, in the consumer's task (work must not touch the call's status: see answer_stream). emit
    must be called on the event loop's thread. If the consumer stops early (the caller went away), work is
    cancelled and awaited, so it never outlives its call."""
    events: asyncio.Queue = asyncio.Queue()
    finished = object()

    async def run() -> None:
        try:
            await work(events.put_nowait)
        finally:
            events.put_nowait(finished)

    task = asyncio.ensure_future(run())
    try:
        while (event := await events.get()) is not finished:
            yield event
        await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def offloaded_service(service: ServiceDescriptor, servicer: Any, pool: WorkerPool) -> grpc.GenericRpcHandler:
    """servicer's methods (unary and server-streaming), with protobuf parsing and serialization of large messages
    on the worker pool instead of the event loop: a 50 MP photo's request or a 24 MP PNG response takes tens of
    milliseconds to (de)serialize, and nothing else on the loop (health checks, admission) runs meanwhile. Bytes
    that are no valid request are INVALID_ARGUMENT (grpc.aio alone answers UNKNOWN, naming a Python class)."""
    handlers = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        behaviour = getattr(servicer, method.name)
        if not (inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)):
            continue  # the generated base's placeholder: left unregistered, gRPC answers UNIMPLEMENTED
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(behaviour, request_type, pool, method.name)
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(behaviour, request_type, pool, method.name)
            )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


async def _parse(raw: bytes, request_type: type[Message], pool: WorkerPool, method: str, context) -> Message:
    try:
        return await parsed(request_type, raw, pool)
    except DecodeError:
        pass  # aborted below, outside the except block, so the call holds no traceback
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the {method} request is not a valid protobuf message ({len(raw)} bytes); send it with a client "
        "generated from faceedit's .proto files",
    )
    raise AssertionError("unreachable: context.abort raises")


def _unary(behaviour, request_type: type[Message], pool: WorkerPool, method: str):
    async def handle(raw: bytes, context) -> bytes:
        response = await behaviour(await _parse(raw, request_type, pool, method, context), context)
        return await serialized(response, pool)

    return handle


def _streaming(behaviour, request_type: type[Message], pool: WorkerPool, method: str):
    async def handle(raw: bytes, context) -> AsyncIterator[bytes]:
        async for event in behaviour(await _parse(raw, request_type, pool, method, context), context):
            yield await serialized(event, pool)

    return handle


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: HealthServicer
    port: int
    service_names: tuple[str, ...]
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None

    async def set_serving(self, serving: bool) -> None:
        """Readiness: "" and the service names. Liveness stays SERVING for as long as the process runs."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def drain(self, grace_s: float) -> None:
        """NOT_SERVING (load balancers and health-checking clients stop sending), refuse new calls, let calls in
        flight (the inpainter's queue is made of them) finish for up to grace_s, then stop. Liveness answers until
        the end, so a draining pod is not restarted for being slow."""
        await self.set_serving(False)
        await self.server.stop(grace=grace_s)
        if self.health_server is not None:
            await self.health_server.stop(grace=None)


async def start_grpc_server(
    register: Iterable[Callable[[grpc.aio.Server], None]],
    service_names: Iterable[str],
    *,
    host: str,
    port: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    reflection: bool = False,
    health_port: int = -1,
    max_connection_age_s: float = 0.0,
    max_connection_age_grace_s: float = 0.0,
) -> RunningServer:
    """Start a grpc.aio server (TLS with credentials) with health: readiness NOT_SERVING until the caller says
    otherwise, liveness SERVING. health_port >= 0 also serves health alone, in plaintext, on that port (kube's
    native gRPC probes speak no TLS; 0 picks a free port). port 0 binds a free port; RunningServer has the ports."""
    names = tuple(service_names)
    options = server_options(
        max_message_bytes,
        max_connection_age_s=max_connection_age_s,
        max_connection_age_grace_s=max_connection_age_grace_s,
    )
    server = grpc.aio.server(options=options, interceptors=list(interceptors))
    for add in register:
        add(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if reflection:
        enable_server_reflection(
            (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, SERVICE_NAME), server
        )
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {address}")
    running = RunningServer(server, health, bound, names)
    if health_port >= 0:
        running.health_server = grpc.aio.server(options=server_options())
        health_pb2_grpc.add_HealthServicer_to_server(health, running.health_server)
        running.health_port = running.health_server.add_insecure_port(f"{host}:{health_port}")
        if running.health_port == 0:
            raise OSError(f"cannot bind the health port {host}:{health_port}")
    await running.set_serving(False)
    await health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    if running.health_server is not None:
        await running.health_server.start()
    return running


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> int | None:
    """Expose registry on http://host:port/metrics; port 0 picks a free port, -1 disables. Returns the port."""
    if port < 0:
        return None
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server.server_port


async def start_service(
    register: Callable[[grpc.aio.Server], None],
    service_name: str,
    args: Any,
    registry: CollectorRegistry,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[RunningServer, int | None]:
    """A service's gRPC server and its /metrics endpoint from its parsed server_flags. TLS files are checked
    here (TlsConfigError, one line naming the file) and reloaded later when they change. Returns the server and
    the metrics port (None when disabled)."""
    credentials = server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    running = await start_grpc_server(
        [register],
        [service_name],
        host=args.host,
        port=args.port,
        max_message_bytes=args.max_message_bytes,
        credentials=credentials,
        interceptors=interceptors,
        reflection=args.reflection,
        health_port=args.health_port,
        max_connection_age_s=args.max_connection_age,
        max_connection_age_grace_s=args.max_connection_age_grace,
    )
    return running, serve_metrics(registry, args.metrics_host, args.metrics_port)


def return_large_buffers_to_the_os(threshold: int = 1 << 20) -> bool:
    """Pin glibc's mmap threshold, so every buffer of at least `threshold` bytes (photos, masks, label maps, raw
    regions) is its own mapping, given back to the OS when freed.

    By default glibc raises the threshold after each large free, up to 32 MiB: photo-sized buffers then come from
    per-thread heap arenas that are seldom returned, and a server's memory follows whichever arena last held a
    burst of requests instead of the requests it holds now (measured: the orchestrator's RSS moving 231-302 MiB
    between rounds of identical overload). Returns False where mallopt is not available (not glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_mmap_threshold = -3
    return bool(libc.mallopt(m_mmap_threshold, threshold))


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so servers drain instead of dying mid-request."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
