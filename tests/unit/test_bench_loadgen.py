"""The load generator against in-process fake targets: counts, concurrency, open-loop timing, error codes."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest
from tritonclient.utils import InferenceServerException

from faceedit.bench.loadgen import Level, closed_loop, error_code, open_loop, run_level
from faceedit.bench.targets import BadResponseError, Target


class FakeServer:
    """Answers once released; records how many requests it holds at once."""

    def __init__(self, fail_every: int = 0) -> None:
        self.calls = 0
        self.held = 0
        self.max_held = 0
        self.fail_every = fail_every
        self.release = asyncio.Event()
        self.release.set()

    async def call(self) -> dict[str, float]:
        self.calls += 1
        number = self.calls
        self.held += 1
        self.max_held = max(self.max_held, self.held)
        try:
            await asyncio.sleep(0)  # let other workers in, so overlapping requests really overlap
            await self.release.wait()
        finally:
            self.held -= 1
        if self.fail_every and number % self.fail_every == 0:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), grpc.aio.Metadata(), "queue full"
            )
        return {"parse": 1.0, "denoise": 2.0, "composite": 0.5}


def test_level_summary_counts_stages_and_overhead() -> None:
    level = Level(2, "closed", latencies_ms=[100.0, 120.0], errors=Counter({"UNAVAILABLE": 1}), duration_s=2.0)
    level.stages = [
        {"parse": 10.0, "queue": 5.0, "denoise": 75.0, "composite": 2.0},
        {"parse": 10.0, "denoise": 95.0, "composite": 3.0},
    ]
    summary = level.summary()
    assert (summary["sent"], summary["ok"], summary["errors"]) == (3, 2, {"UNAVAILABLE": 1})
    assert summary["throughput_rps"] == 1.0
    # Only the models' own time and the queue are not overhead; compositing at full resolution is ours.
    assert summary["overhead_ms"]["p50"] == pytest.approx(12.5)  # 10 and 15 ms
    assert summary["stages_ms"]["denoise"] == pytest.approx(85.0)


def test_level_summary_uses_server_counters_without_per_request_timings() -> None:
    level = Level(1, "closed", latencies_ms=[5.0], stages=[{}], duration_s=1.0, server_stages_ms={"queue": 1.5})
    summary = level.summary()
    assert summary["stages_ms"] == {"queue": 1.5} and summary["overhead_ms"] is None


def test_closed_loop_sends_exactly_the_requests_with_at_most_n_in_flight() -> None:
    server = FakeServer(fail_every=4)
    ticks = []
    level = asyncio.run(closed_loop(server.call, 3, requests=10, duration_s=None, tick=lambda: ticks.append(1)))
    summary = level.summary()
    assert server.calls == 10 == summary["sent"] == len(ticks)
    assert summary["ok"] == 8 and summary["errors"] == {"RESOURCE_EXHAUSTED": 2}
    assert server.max_held == 3 == summary["max_in_flight"]


def test_closed_loop_needs_a_count_or_a_duration() -> None:
    with pytest.raises(ValueError):
        asyncio.run(closed_loop(FakeServer().call, 1, requests=None, duration_s=None))


def test_open_loop_does_not_wait_for_answers_and_counts_latency_from_the_schedule() -> None:
    async def scenario() -> tuple[Level, FakeServer]:
        server = FakeServer()
        server.release.clear()  # a stalled server: nothing answers until every request has been sent

        async def call() -> dict[str, float]:
            if server.calls == 4:
                server.release.set()
            return await server.call()

        return await open_loop(call, 50.0, requests=5, poisson=False), server

    level, server = asyncio.run(scenario())
    assert server.max_held == 5 == level.max_in_flight  # a closed loop of any size < 5 could not do this
    # The first request was scheduled at 0 and answered only after the fifth was sent at 80 ms.
    assert level.latencies_ms[0] >= 80.0 - 1.0
    assert level.summary()["sent"] == 5 and level.mode == "open" and level.rate == 50.0


def test_run_level_warms_up_outside_the_measurement_and_samples_server_counters() -> None:
    server = FakeServer()
    snapshots = [
        {"compute_infer": {"count": "2", "ns": "20000000"}},
        {"compute_infer": {"count": "6", "ns": "60000000"}},
    ]

    async def totals() -> dict:
        return snapshots.pop(0)

    async def close() -> None:
        return None

    level = asyncio.run(run_level(Target(server.call, close, totals), concurrency=2, requests=4, warmup=2))
    assert server.calls == 6 and level.sent == 4  # the 2 warm-up requests are not counted
    assert level.server_stages_ms == {"compute_infer": 10.0}


def test_run_level_open_loop_for_a_duration_sends_rate_times_duration() -> None:
    server = FakeServer()

    async def close() -> None:
        return None

    level = asyncio.run(run_level(Target(server.call, close), rate=100.0, duration_s=0.05, poisson=False))
    assert level.sent == 5 == server.calls


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()), "UNAVAILABLE"),
        (InferenceServerException("model not ready", status="StatusCode.UNAVAILABLE"), "UNAVAILABLE"),
        (InferenceServerException("bad batch", status="StatusCode.INVALID_ARGUMENT"), "INVALID_ARGUMENT"),
        (BadResponseError("labels of shape (0,)"), "BAD_RESPONSE"),
        (TimeoutError(), "DEADLINE_EXCEEDED"),
        (ConnectionResetError(), "ConnectionResetError"),
    ],
)
def test_errors_are_counted_by_grpc_status(exc: BaseException, code: str) -> None:
    assert error_code(exc) == code


def test_overhead_excludes_the_wait_in_the_inpainters_queue() -> None:
    level = Level(2, "closed", latencies_ms=[1000.0], duration_s=1.0)
    level.stages = [{"parse": 50.0, "queue": 400.0, "denoise": 500.0, "composite": 5.0, "encode": 30.0}]
    assert level.summary()["overhead_ms"]["p50"] == pytest.approx(50.0)  # composite and encode are ours


def test_closed_loop_for_a_duration_stops_sending_and_counts_everything_sent() -> None:
    server = FakeServer()
    level = asyncio.run(closed_loop(server.call, 2, requests=None, duration_s=0.05))
    assert level.sent == server.calls == level.ok >= 2 and level.duration_s >= 0.05
