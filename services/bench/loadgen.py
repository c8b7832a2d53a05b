"""Closed-loop (N workers back to back) and open-loop (target arrival rate) load against one target."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from faceedit.bench.stats import arrival_times, summarize
from faceedit.bench.targets import Call
from faceedit.parser.client import ParserError, ParserUnavailableError


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

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def sent(self) -> int:
        return self.ok + sum(self.errors.values())

    def summary(self) -> dict:
        stage_means = {}
        if self.stages:
            for key in self.stages[0]:
                stage_means[key] = sum(s[key] for s in self.stages) / len(self.stages)
        overhead = [
            lat - (s.get("parse", 0.0) + s.get("denoise", 0.0) + s.get("composite", 0.0))
            for lat, s in zip(self.latencies_ms, self.stages, strict=False)
            if s
        ]
        return {
            "concurrency": self.concurrency,
            "mode": self.mode,
            "rate": self.rate,
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "duration_s": self.duration_s,
            "throughput_rps": self.ok / self.duration_s if self.duration_s else 0.0,
            "latency_ms": summarize(self.latencies_ms),
            "stages_ms": stage_means,
            "overhead_ms": summarize(overhead) if overhead else None,
        }


def _code(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    if isinstance(exc, ParserUnavailableError):
        return "UNAVAILABLE"
    if isinstance(exc, ParserError):
        return "INTERNAL"
    if isinstance(exc, asyncio.TimeoutError):
        return "DEADLINE_EXCEEDED"
    return type(exc).__name__


async def _one(call: Call, level: Level, scheduled: float) -> None:
    try:
        stages = await call()
    except Exception as exc:  # counted by status: a load test reports failures, it does not stop on them
        level.errors[_code(exc)] += 1
        return
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
    level = Level(concurrency, "closed")
    started = time.monotonic()
    budget = {"left": requests if requests is not None else 10**9}
    stop_at = started + duration_s if duration_s else None

    async def worker() -> None:
        while budget["left"] > 0 and (stop_at is None or time.monotonic() < stop_at):
            budget["left"] -= 1
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
