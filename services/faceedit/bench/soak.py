"""Rounds of overload against a local stack: each server's memory after every round, and how fast the
orchestrator answers health checks meanwhile (its event loop must stay free however busy it is).

Memory that grows round after round under the same load is a leak; memory that settles after the first rounds is
caches and allocator pools filling up. Health-check latency under overload shows whether CPU work reaches the
event loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceedit.bench.loadgen import run_level
from faceedit.bench.stats import summarize
from faceedit.bench.targets import editface_target


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} reports no VmRSS")


def _probe(address: str, interval_s: float, stop, results) -> None:
    """Health.Check on `liveness` every interval_s until stop is set; latencies (ms) and failures to results."""
    latencies, failures = [], 0
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="liveness")
        while not stop.is_set():
            started = time.perf_counter()
            try:
                stub.Check(request, timeout=2)
                latencies.append((time.perf_counter() - started) * 1000)
            except grpc.RpcError:
                failures += 1
            stop.wait(interval_s)
    results.put((latencies, failures))


@dataclass
class HealthProbe:
    """Health checks from a process of their own, so the load generator (its event loop, its GIL) does not colour
    the measurement: what is left is the server's own responsiveness."""

    address: str
    interval_s: float = 0.02
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0

    def __enter__(self) -> HealthProbe:
        context = multiprocessing.get_context("spawn")
        self._stop, self._results = context.Event(), context.Queue()
        self._process = context.Process(
            target=_probe, args=(self.address, self.interval_s, self._stop, self._results), daemon=True
        )
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.latencies_ms, self.failures = self._results.get(timeout=30)
        self._process.join(timeout=10)


def run_soak(
    address: str,
    pids: dict[str, int],
    image,
    edits: list,
    *,
    rounds: int,
    concurrency: int,
    round_s: float,
    timeout_s: float = 120.0,
    settle_s: float = 1.0,
    log=print,
) -> dict:
    """rounds x (concurrency callers for round_s seconds of EditFace), then each process's RSS (pids: name -> pid)
    once the round's calls have ended and settle_s has passed."""
    results = []
    for index in range(1, rounds + 1):
        with HealthProbe(address) as probe:

            async def level():
                target = editface_target(address, image, edits, timeout_s=timeout_s, input_format="jpeg")
                try:
                    return await run_level(target, concurrency=concurrency, duration_s=round_s)
                finally:
                    await target.close()

            summary = asyncio.run(level()).summary()
        time.sleep(settle_s)  # calls cancelled at the round's end finish their clean-up before memory is read
        row = {
            "round": index,
            "sent": summary["sent"],
            "ok": summary["ok"],
            "errors": summary["errors"],
            "rss_mb": {name: round(rss_mb(pid), 1) for name, pid in pids.items()},
            "health_ms": summarize(probe.latencies_ms) if probe.latencies_ms else None,
            "health_failures": probe.failures,
        }
        health = row["health_ms"] or {}
        log(
            f"round {index}: {row['sent']} sent, {row['ok']} ok, errors {row['errors']}; RSS "
            + ", ".join(f"{name} {mb:.0f} MiB" for name, mb in row["rss_mb"].items())
            + f"; health p50 {health.get('p50', float('nan')):.1f} ms p99 {health.get('p99', float('nan')):.1f} ms "
            f"max {health.get('max', float('nan')):.1f} ms"
        )
        results.append(row)
    return {"rounds": results, "concurrency": concurrency, "round_s": round_s}


def growth(rounds: list[dict], name: str, start: int = 2) -> float:
    """Relative RSS change of process `name` between round `start` (1-based) and the last round."""
    first = rounds[start - 1]["rss_mb"][name]
    return (rounds[-1]["rss_mb"][name] - first) / first
