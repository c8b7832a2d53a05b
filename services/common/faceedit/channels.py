"""Every gRPC channel faceedit opens is built here, so both ends of a hop agree on message sizes.

Used by the orchestrator (its hops to Triton and the inpainter), the CLI, the benchmarks and the tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from faceedit.workers import WorkerPool, parsed, serialized

# gRPC's default is 4 MiB; a 1024x1024 PNG or a raw 1024x1024 RGB frame (3 MiB plus mask) gets close to it.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20
# The front door carries the caller's photo and the edited one, plus masks and parse maps when asked: a 24 MP PNG
# response with return_masks is ~100 MiB. Internal hops stay bounded by the models' canvases.
FRONT_DOOR_MAX_MESSAGE_BYTES = 256 * 2**20


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """Options for servers and channels alike, so both ends agree on the size limits."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


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
