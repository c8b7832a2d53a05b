"""The bounded pool of threads that does a service's CPU work, so its event loop only does I/O."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from google.protobuf.message import Message

T = TypeVar("T")
M = TypeVar("M", bound=Message)
# Messages at least this large are parsed and serialized on the pool; smaller ones are not worth a thread hop.
INLINE_BYTES = 64 * 2**10
# Niceness of the worker threads: when cores are short, the event loop's thread (health checks, admission,
# streaming) runs first and the number crunching waits.
WORKER_NICENESS = 5


def _yield_to_io() -> None:
    """Lower the calling thread's scheduling priority (Linux schedules threads one by one; raising one's own
    niceness needs no privilege)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


class WorkerPool:
    """Threads for CPU work (decode, resize, masks, composite, raw copies, encode, protobuf parsing and
    serialization of large messages), so the event loop does I/O only and answers health checks in milliseconds
    however busy the service is. numpy, OpenCV, Pillow and protobuf release the GIL inside these kernels, so the
    threads really run in parallel. Admission bounds the calls in flight, and each has at most one job here, so
    the queue is bounded too."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a worker pool needs at least one thread, got {workers}")
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cpu", initializer=_yield_to_io)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        # The caller's context travels along, so log fields and trace spans follow the work into the thread.
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def payload_bytes(message: Message) -> int:
    """The bytes in message's string and bytes fields, nested messages included: most of its wire size, counted
    without serializing it (upb's ByteSize() serializes: a millisecond per megabyte, holding the GIL)."""
    total = 0
    for field, value in message.ListFields():
        values = value if field.is_repeated else (value,)
        if field.type == field.TYPE_MESSAGE:
            total += sum(payload_bytes(item) for item in values)
        elif field.type in (field.TYPE_BYTES, field.TYPE_STRING):
            total += sum(len(item) for item in values)
    return total


async def serialized(message: Message, pool: WorkerPool) -> bytes:
    """message's wire bytes; on the pool when it is large (a 4 MB region or a 100 MB response takes milliseconds
    to tens of milliseconds, holding the GIL, which an event loop cannot spare)."""
    if payload_bytes(message) < INLINE_BYTES:
        return message.SerializeToString()
    return await pool.run(message.SerializeToString)


async def parsed(message_type: type[M], data: bytes, pool: WorkerPool) -> M:
    """data parsed as message_type, on the pool when it is large; DecodeError when it is no such message."""
    if len(data) < INLINE_BYTES:
        return message_type.FromString(data)
    return await pool.run(message_type.FromString, data)
