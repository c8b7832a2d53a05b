"""One FaceEditor call's state as it crosses the flow: its deadline, start, request id and (for streams) where its
events go; and the one way a stage is run: its start and done events, its span and its time, together."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from opentelemetry.trace import SpanKind

from faceedit.orchestrator.errors import DeadlinePassedError
from faceedit.rpc.tracing import TRACER
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import types_pb2

Emit = Callable[[fe.EditFaceEvent], Awaitable[None]]


class Deadline:
    def __init__(self, remaining_s: float | None, default_s: float) -> None:
        self.at = time.monotonic() + (remaining_s if remaining_s is not None else default_s)

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlinePassedError()
        return left


class Clock:
    """What a stage's time counts: all of it, unless the stage narrows it to the parts inside `timed()` (parse_ms
    is the parser's round trip alone, not the letterboxing around it)."""

    def __init__(self) -> None:
        self.narrowed = False
        self.ms = 0.0

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        self.narrowed = True
        started = time.monotonic()
        try:
            yield
        finally:
            self.ms += (time.monotonic() - started) * 1000


@dataclass
class Call:
    request_id: str
    deadline: Deadline
    emit: Emit | None = None
    started: float = field(default_factory=time.monotonic)

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000

    async def send(self, event: fe.EditFaceEvent) -> None:
        if self.emit is not None:
            await self.emit(event)

    @contextlib.asynccontextmanager
    async def stage(
        self,
        kind: int | None,
        timings: types_pb2.StageTimings | None,
        name: str,
        *,
        index: int = 0,
        face: int | None = None,
        client: bool = False,
        attributes: dict[str, str] | None = None,
    ) -> AsyncIterator[Clock]:
        """Run a stage: a StageEvent (kind, edit index, face) before and after when kind is given, a span called
        name (CLIENT for a call to a dependency), and its milliseconds added to timings.<name>_ms (when timings is
        given: a step whose faces run concurrently times the stage once, around all of them)."""
        if kind is not None:
            await self._stage_event(kind, index, face, done=False)
        clock = Clock()
        started = time.monotonic()
        with TRACER.start_as_current_span(
            name, kind=SpanKind.CLIENT if client else SpanKind.INTERNAL, attributes=attributes
        ) as span:
            yield clock
            ms = clock.ms if clock.narrowed else (time.monotonic() - started) * 1000
            span.set_attribute(f"faceedit.{name}_ms", ms)
        if timings is not None:
            field_name = f"{name}_ms"
            setattr(timings, field_name, getattr(timings, field_name) + ms)
        if kind is not None:
            await self._stage_event(kind, index, face, done=True)

    async def _stage_event(self, kind: int, index: int, face: int | None, *, done: bool) -> None:
        event = fe.StageEvent(stage=kind, edit_index=index, done=done, elapsed_ms=self.elapsed_ms(), face_index=face)
        await self.send(fe.EditFaceEvent(stage=event))
