"""Scale-out on real processes: calls spread over inpainter replicas, a killed replica costs no call, a drained one
finishes its queue, the orchestrator stays live without dependencies, and connections age out without errors."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from faceedit.core.imageio import encode_image
from faceedit.devstack.ports import free_port
from faceedit.devstack.process import ServiceProcess, health_status
from faceedit.devstack.prometheus import LocalPrometheus
from faceedit.devstack.triton import TritonServer
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, channel_options, dial
from faceedit.rpc.serving import start_grpc_server
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.fixtures.inpainter import start_inpainter
from tests.fixtures.stack import start_orchestrator
from tests.helpers import FACEEDIT, metric_value, wait_for

OK_CALLS = 'faceedit_inpainter_requests_total{code="OK",method="Inpaint"}'
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
REPLICA_FLAGS = ("--torch-threads", "1", "--drain-grace", "60")


def _request(steps: int) -> fe.EditFaceRequest:
    """A 96x96 portrait whose edit region is a caller's mask (no dependence on the random parser)."""
    image = np.full((96, 96, 3), 180, np.uint8)
    image[20:76, 24:72] = (224, 172, 150)
    mask = np.zeros((96, 96), np.uint8)
    mask[40:70, 30:66] = 255
    edit = fe.Edit(
        prompt="a face",
        num_inference_steps=steps,
        mask=types_pb2.MaskOptions(
            classes=["skin"],
            extra_mask=types_pb2.EncodedImage(data=encode_image(mask)),
            merge=types_pb2.MASK_MERGE_REPLACE,
        ),
    )
    return fe.EditFaceRequest(image=types_pb2.EncodedImage(data=encode_image(image)), edits=[edit])


def _load(address: str, calls: int, concurrency: int, steps: int, done: Counter | None = None) -> Counter:
    """calls EditFace calls, concurrency at a time; outcomes by status name (done counts them as they end)."""
    done = Counter() if done is None else done
    channel = grpc.insecure_channel(address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES))
    stub = face_editor_pb2_grpc.FaceEditorStub(channel)
    request = _request(steps)

    def one(_: int) -> None:
        try:
            stub.EditFace(request, timeout=120)
            done["OK"] += 1
        except grpc.RpcError as exc:
            done[f"{exc.code().name}: {exc.details()}"] += 1

    with channel, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(calls)))
    return done


@dataclass
class Fleet:
    inpainters: list[ServiceProcess]
    orchestrator: ServiceProcess

    def served(self) -> list[float]:
        return [metric_value(p.metrics_url, OK_CALLS) for p in self.inpainters]


@pytest.fixture
def fleet(tiny_inpaint_model: Path, triton_server: TritonServer, tmp_path: Path) -> Iterator[Fleet]:
    """Three inpainter replicas behind one ipv4: target, and an orchestrator balancing over them."""
    inpainters = [
        start_inpainter(tiny_inpaint_model, tmp_path, *REPLICA_FLAGS, name=f"inpainter-{i}", wait=False)
        for i in range(3)
    ]
    orchestrator = None
    try:
        for replica in inpainters:
            replica.wait_serving(120)
        target = "ipv4:" + ",".join(p.address for p in inpainters)
        orchestrator = start_orchestrator(triton_server.grpc_url, target, tmp_path)
        fleet = Fleet(inpainters, orchestrator)
        # round_robin picks only the replicas its channel has connected to and health-checked; until all three
        # are in rotation (seconds on a loaded machine) the first ready one takes every call.
        deadline = time.monotonic() + 120
        while min(fleet.served()) < 1:
            assert time.monotonic() < deadline, f"not every replica served a call: {fleet.served()}"
            assert _load(orchestrator.address, 3, 3, steps=2) == Counter({"OK": 3})
        yield fleet
    finally:
        for process in (orchestrator, *inpainters):
            if process is not None:
                process.stop()


def test_calls_are_spread_over_the_replicas(fleet: Fleet) -> None:
    before = fleet.served()
    outcomes = _load(fleet.orchestrator.address, 60, 6, steps=2)
    assert outcomes == Counter({"OK": 60})
    per_replica = [after - b for after, b in zip(fleet.served(), before, strict=True)]
    assert sum(per_replica) == 60 and all(12 <= n <= 28 for n in per_replica), per_replica


def test_a_killed_replica_costs_no_call_and_the_others_serve_the_rest(fleet: Fleet) -> None:
    done: Counter = Counter()
    load = threading.Thread(target=_load, args=(fleet.orchestrator.address, 60, 6, 6, done))
    load.start()
    try:
        wait_for(lambda: done["OK"] >= 10, "10 calls to complete", timeout_s=120)
        victim, others = fleet.inpainters[0], fleet.inpainters[1:]
        served_by_victim = metric_value(victim.metrics_url, OK_CALLS)
        os.kill(victim.process.pid, signal.SIGKILL)
    finally:
        load.join()
    assert done == Counter({"OK": 60}), done  # the calls in flight on the killed replica were retried elsewhere
    served_by_others = sum(metric_value(p.metrics_url, OK_CALLS) for p in others)
    assert served_by_others >= 60 - served_by_victim - 2  # (two calls may end between the scrape and the kill)


def test_a_terminated_replica_finishes_its_queued_work_then_exits(fleet: Fleet) -> None:
    done: Counter = Counter()
    load = threading.Thread(target=_load, args=(fleet.orchestrator.address, 30, 6, 20, done))
    load.start()
    victim = fleet.inpainters[0]
    try:
        wait_for(
            lambda: metric_value(victim.metrics_url, "faceedit_inpainter_queue_depth") >= 1,
            "a queued job on the replica",
            timeout_s=120,
        )
        terminated = time.monotonic()
        victim.process.send_signal(signal.SIGTERM)
        wait_for(lambda: victim.process.poll() is not None, "the replica to drain and exit", timeout_s=60)
    finally:
        load.join()
    assert time.monotonic() - terminated < 60 and victim.process.returncode == 0  # within its grace, by itself
    log = victim.log_path.read_text()
    held = int(re.search(r"draining: NOT_SERVING, (\d+) jobs running or queued", log)[1])
    assert held >= 2 and f"{held} jobs finished, 0 cut off" in log  # the running job and the queued one(s)
    assert done == Counter({"OK": 30}), done


def test_the_orchestrator_stays_live_without_inpainters_and_turns_ready_when_one_returns(
    tiny_inpaint_model: Path, triton_server: TritonServer, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
    orchestrator = start_orchestrator(triton_server.grpc_url, target, tmp_path, wait_serving=False)
    inpainter = None
    try:
        wait_for(lambda: health_status(orchestrator.health_address, "liveness") == SERVING, "liveness")
        assert health_status(orchestrator.health_address, "faceedit.v1.FaceEditor") == NOT_SERVING
        time.sleep(1.0)  # several dependency checks later: still live, still not ready
        assert health_status(orchestrator.health_address, "liveness") == SERVING
        assert orchestrator.exit_code() is None
        inpainter = start_inpainter(tiny_inpaint_model, tmp_path, name="late", port=ports[1])
        wait_for(
            lambda: health_status(orchestrator.health_address, "faceedit.v1.FaceEditor") == SERVING,
            "readiness once an inpainter is back",
            timeout_s=60,
        )
        assert _load(orchestrator.address, 2, 1, steps=2) == Counter({"OK": 2})
    finally:
        for process in (orchestrator, inpainter):
            if process is not None:
                process.stop()


def test_connections_age_out_and_the_client_reconnects_without_a_failed_call() -> None:
    """A server with a 0.5 s maximum connection age; a client calling every 0.1 s for 3 s through dial(): the
    calls arrive on several connections (client ports) and none fails."""

    async def scenario() -> tuple[set[str], int]:
        peers: list[str] = []

        async def who(request: bytes, context) -> bytes:
            peers.append(context.peer())
            return b""

        def register(server: grpc.aio.Server) -> None:
            handler = grpc.unary_unary_rpc_method_handler(who)
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Peer", {"Who": handler}),))

        running = await start_grpc_server(
            [register], ["test.Peer"], host="127.0.0.1", port=0, max_connection_age_s=0.5,
            max_connection_age_grace_s=5,
        )  # fmt: skip
        failures = 0
        try:
            async with dial(f"127.0.0.1:{running.port}") as channel:
                call = channel.unary_unary("/test.Peer/Who")
                for _ in range(30):
                    try:
                        await call(b"", timeout=5)
                    except grpc.aio.AioRpcError:
                        failures += 1
                    await asyncio.sleep(0.1)
        finally:
            await running.drain(1)
        return set(peers), failures

    peers, failures = asyncio.run(scenario())
    assert failures == 0 and len(peers) >= 3, peers


def test_up_serves_replicas_and_stops_prometheus_with_the_stack(models_dir: Path, tmp_path: Path) -> None:
    """... with a local Prometheus (--prometheus) scraping every replica under the job names the rules use, and
    stopped with the stack. (A replica that dies is restarted: tests/integration/test_up_supervision.py.)"""
    import subprocess

    port = free_port()
    up = subprocess.Popen(
        [*FACEEDIT, "up", "--models-dir", str(models_dir), "--port", str(port), "--triton-grpc-port", "0",
         "--inpainter-port", "0", "--metrics-port", "0", "--inpainter-metrics-port", "0", "--working-size", "128",
         "--parser-size", "128", "--inpainter-replicas", "2", "--parser-replicas", "2", "--prometheus",
         "--prometheus-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = []
        while not lines or "faceedit is up" not in lines[-1]:
            line = up.stdout.readline()
            assert line, f"faceedit up ended early: {up.stderr.read()}"
            lines.append(line)
        inpainters = [line.split()[1] for line in lines if line.startswith("inpainter:")]
        assert len(inpainters) == 2 and sum(line.startswith("parser:") for line in lines) == 2
        (prometheus_url,) = [line.split()[1] for line in lines if line.startswith("prometheus:")]
        prometheus = LocalPrometheus({}, port=int(prometheus_url.rpartition(":")[2]))  # a client of up's own
        scraped = prometheus.wait_for("up == 1", until=lambda result: len(result) == 5)
        assert Counter(r["metric"]["job"] for r in scraped) == {"orchestrator": 1, "inpainter": 2, "face-parser": 2}
        assert _load(f"127.0.0.1:{port}", 4, 2, steps=2) == Counter({"OK": 4})
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
        with pytest.raises(urllib.error.URLError):  # Prometheus went with the stack
            urllib.request.urlopen(f"{prometheus_url}/-/ready", timeout=5)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
