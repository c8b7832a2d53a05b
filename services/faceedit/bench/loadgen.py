"""Closed-loop (N workers back to back) and open-loop (target arrival rate) load against one target."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from tritonclient.utils import InferenceServerException

from faceedit.bench.stats import arrival_times, overhead_ms, summarize, triton_stage_ms
from faceedit.bench.targets import BadResponseError, Call, Target


@dataclass
class Level:
    """Everything measured at one concurrency (or, open loop, one rate: concurrency 0) level."""

    concurrency: int
    mode: str
    rate: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    duration_s: float = 0.0
    # Mean ms per stage from the server's own counters (Triton), where it reports no per-request timings.
    server_stages_ms: dict[str, float] | None = None
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def sent(self) -> int:
        return self.ok + sum(self.errors.values())

    def summary(self) -> dict:
        stage_means = dict(self.server_stages_ms or {})
        timed = [s for s in self.stages if s]
        for key in {k for s in timed for k in s}:
            stage_means[key] = sum(s.get(key, 0.0) for s in timed) / len(timed)
        overhead = [overhead_ms(lat, s) for lat, s in zip(self.latencies_ms, self.stages, strict=True) if s]
        return {
            "concurrency": self.concurrency,
            "mode": self.mode,
            "rate": self.rate,
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "duration_s": self.duration_s,
            "max_in_flight": self.max_in_flight,
            "throughput_rps": self.ok / self.duration_s if self.duration_s else 0.0,
            "latency_ms": summarize(self.latencies_ms),
            "stages_ms": stage_means,
            "overhead_ms": summarize(overhead) if overhead else None,
        }


def error_code(exc: BaseException) -> str:
    """The gRPC status name of a failed request (tritonclient reports it as "StatusCode.X"), else the error type."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    if isinstance(exc, InferenceServerException) and exc.status():
        return str(exc.status()).removeprefix("StatusCode.")
    if isinstance(exc, BadResponseError):
        return "BAD_RESPONSE"
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED"
    return type(exc).__name__


async def _one(call: Call, level: Level, scheduled: float) -> None:
    level.in_flight += 1
    level.max_in_flight = max(level.max_in_flight, level.in_flight)
    try:
        stages = await call()
    except Exception as exc:  # counted by status: a load test reports failures, it does not stop on them
        level.errors[error_code(exc)] += 1
        return
    finally:
        level.in_flight -= 1
    level.latencies_ms.append((time.monotonic() - scheduled) * 1000)
    level.stages.append(stages)


async def closed_loop(
    call: Call,
    concurrency: int,
    *,
    requests: int | None,
    duration_s: float | None,
    tick: Callable[[], None] = lambda: None,
) -> Level:
    """`concurrency` workers, each sending its next request when the previous one returns."""
    if requests is None and duration_s is None:
        raise ValueError("a closed-loop level needs a request count or a duration")
    level = Level(concurrency, "closed")
    started = time.monotonic()
    left = requests
    stop_at = started + duration_s if duration_s else None

    async def worker() -> None:
        nonlocal left
        while (left is None or left > 0) and (stop_at is None or time.monotonic() < stop_at):
            if left is not None:
                left -= 1
            await _one(call, level, time.monotonic())
            tick()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    level.duration_s = time.monotonic() - started
    return level


async def open_loop(
    call: Call, rate: float, *, requests: int, poisson: bool = True, tick: Callable[[], None] = lambda: None
) -> Level:
    """Requests at scheduled times regardless of completions; latency counts from the scheduled send time, so a
    server that falls behind shows its queueing instead of slowing the generator down (coordinated omission)."""
    level = Level(0, "open", rate)
    started = time.monotonic()
    tasks = []
    for offset in arrival_times(rate, requests, poisson=poisson):
        scheduled = started + float(offset)
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(_one(call, level, scheduled))
        task.add_done_callback(lambda _: tick())
        tasks.append(task)
    await asyncio.gather(*tasks)
    level.duration_s = time.monotonic() - started
    return level


async def warm_up(call: Call, count: int) -> None:
    for _ in range(count):
        try:
            await call()
        except Exception:  # warm-up failures show up again, counted, in the measured run
            pass


async def run_level(
    target: Target,
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    requests: int | None = None,
    duration_s: float | None = None,
    poisson: bool = True,
    warmup: int = 0,
    tick: Callable[[], None] = lambda: None,
) -> Level:
    """One level of a sweep: warm-up requests (not measured), then a closed loop at `concurrency` or an open loop
    at `rate` (whose request count, given a duration, is rate x duration)."""
    await warm_up(target.call, warmup)
    before = await target.server_totals() if target.server_totals else None
    if rate is not None:
        count = requests if requests is not None else max(1, round(rate * (duration_s or 0)))
        level = await open_loop(target.call, rate, requests=count, poisson=poisson, tick=tick)
    elif concurrency is not None:
        level = await closed_loop(target.call, concurrency, requests=requests, duration_s=duration_s, tick=tick)
    else:
        raise ValueError("a level needs a concurrency or a rate")
    if target.server_totals:
        level.server_stages_ms = triton_stage_ms(before, await target.server_totals())
    return level
