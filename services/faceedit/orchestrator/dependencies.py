"""What the EditFace flow needs of its two dependencies, as protocols: the real clients (ParserClient, GrpcInpainter)
satisfy them over the network, and tests pass fakes that satisfy them in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import grpc
import numpy as np

from faceedit.orchestrator.errors import InpainterFailedError
from faceedit.rpc.channels import OffloadedStub
from faceedit.v1 import inpainter_pb2

Metadata = Sequence[tuple[str, str]]


class Parser(Protocol):
    """Square RGB images of input_size in, one label map each out."""

    input_size: int

    async def infer_raw(
        self, batch: np.ndarray, *, timeout_s: float | None = None, headers: dict[str, str] | None = None
    ) -> np.ndarray:
        """[N,S,S,3] uint8 -> [N,S,S] uint8 labels; raises ParserError (or ParserUnavailableError)."""
        ...


class Inpainter(Protocol):
    """A serialized InpaintRequest in, the render out; a failed call raises InpainterFailedError with its status."""

    async def inpaint(
        self, request: bytes, *, timeout_s: float, metadata: Metadata
    ) -> inpainter_pb2.InpaintResponse: ...

    def stream_inpaint(
        self, request: bytes, *, timeout_s: float, metadata: Metadata
    ) -> AsyncIterator[inpainter_pb2.InpaintEvent]:
        """Progress events, then one event carrying the result."""
        ...


class GrpcInpainter:
    """faceedit.v1.Inpainter over a channel, its messages (de)serialized on the worker pool."""

    def __init__(self, stub: OffloadedStub, address: str) -> None:
        self._stub = stub
        self.address = address

    def _failed(self, exc: grpc.aio.AioRpcError) -> InpainterFailedError:
        return InpainterFailedError(exc.code(), exc.details() or "", self.address, tuple(exc.trailing_metadata() or ()))

    async def inpaint(self, request: bytes, *, timeout_s: float, metadata: Metadata) -> inpainter_pb2.InpaintResponse:
        failure = None
        try:
            return await self._stub.unary("Inpaint", request, timeout=timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            failure = self._failed(exc)
        raise failure  # outside the except block: no chained traceback holding the request

    async def stream_inpaint(
        self, request: bytes, *, timeout_s: float, metadata: Metadata
    ) -> AsyncIterator[inpainter_pb2.InpaintEvent]:
        failure = None
        try:
            async for event in self._stub.stream("StreamInpaint", request, timeout=timeout_s, metadata=metadata):
                yield event
        except grpc.aio.AioRpcError as exc:
            failure = self._failed(exc)
        if failure is not None:
            raise failure
