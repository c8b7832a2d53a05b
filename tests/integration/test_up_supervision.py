"""`faceedit up` as a user runs it, with its default ports: three inpainter replicas that never share a port,
reflection when asked, a SIGKILLed replica restarted while the others serve (no call fails), supervision that gives
up naming the child once it fails too often, and a child that cannot start reported with its reason in seconds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from faceedit.devstack.ports import free_port
from faceedit.devstack.process import health_status
from tests.helpers import FACEEDIT, metric_value, wait_for
from tests.integration.test_scale_out import OK_CALLS, _load

SERVING = health_pb2.HealthCheckResponse.SERVING
SMALL = ("--working-size", "128", "--parser-size", "128")


@dataclass
class Up:
    process: subprocess.Popen
    stdout: Path
    stderr: Path

    def lines(self, prefix: str) -> list[list[str]]:
        return [line.split() for line in self.stdout.read_text().splitlines() if line.startswith(prefix)]

    def err(self) -> str:
        return self.stderr.read_text()


def _pid_on_port(port: str) -> int:
    found = subprocess.run(["pgrep", "-f", f"inpainter.server.*--port {port} "], capture_output=True, text=True)
    pids = found.stdout.split()
    assert len(pids) == 1, f"expected one inpainter on port {port}, got {pids}"
    return int(pids[0])


@pytest.fixture(scope="module")
def up(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`faceedit up --inpainter-replicas 3 --reflection` on the documented default ports (50051, 50052..., 9100,
    9101, 8000-8002), failures counted over 300 s so that the tests below, together, stay inside one window."""
    logs = tmp_path_factory.mktemp("up")
    stdout, stderr = logs / "stdout", logs / "stderr"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [*FACEEDIT, "up", "--inpainter-replicas", "3", "--reflection", "--restart-window", "300",
             "--models-dir", str(models_dir), *SMALL],
            stdout=out, stderr=err, text=True,
        )  # fmt: skip
    running = Up(process, stdout, stderr)
    try:
        wait_for(
            lambda: "faceedit is up" in stdout.read_text() or process.poll() is not None,
            "faceedit up to report the stack up",
            timeout_s=300,
        )
        assert process.poll() is None, f"faceedit up ended early:\n{running.err()}"
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=90)


def test_replicas_with_the_default_ports_each_get_their_own(up: Up) -> None:
    inpainters = up.lines("inpainter:")
    assert sorted(line[1] for line in inpainters) == ["127.0.0.1:50052", "127.0.0.1:50053", "127.0.0.1:50054"]
    metrics = sorted(line[3] for line in inpainters)
    assert metrics == [f"http://127.0.0.1:{port}/metrics" for port in (9100, 9102, 9103)]  # 9101 is the orchestrator's
    ((orchestrator,),) = [[line[3]] for line in up.lines("orchestrator:")]
    assert orchestrator == "http://127.0.0.1:9101/metrics"
    parser = up.stdout.read_text().split("parser:", 1)[1].splitlines()[0]
    assert "triton gRPC 127.0.0.1:8001  HTTP http://127.0.0.1:8000  metrics http://127.0.0.1:8002/metrics" in parser
    for line in inpainters:
        assert health_status(line[1], "faceedit.v1.Inpainter") == SERVING
        assert metric_value(line[3], OK_CALLS) >= 0  # the metrics endpoint answers
    assert metric_value("http://127.0.0.1:8002/metrics", "nv_inference_count") >= 0  # Triton's documented port


def test_reflection_lists_the_services(up: Up) -> None:
    with grpc.insecure_channel("127.0.0.1:50051") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = list(stub.ServerReflectionInfo(iter([ask]), timeout=10))
    names = {service.name for service in answer.list_services_response.service}
    assert {"faceedit.v1.FaceEditor", "grpc.health.v1.Health"} <= names


def test_a_sigkilled_replica_costs_no_call_and_serves_again_after_its_restart(up: Up) -> None:
    done: Counter = Counter()
    load = threading.Thread(target=_load, args=("127.0.0.1:50051", 45, 6, 4, done))
    load.start()
    try:
        wait_for(lambda: done["OK"] >= 20, "20 of 45 calls to complete", timeout_s=180)
        os.kill(_pid_on_port("50053"), signal.SIGKILL)
    finally:
        load.join()
    assert done == Counter({"OK": 45}), done  # the calls on the killed replica were retried on the others
    wait_for(lambda: "inpainter-2 restarted and ready again" in up.err(), "inpainter-2's restart", timeout_s=180)
    assert "faceedit up: inpainter-2 was killed by SIGKILL; restarting in 1s" in up.err()
    assert up.process.poll() is None and health_status("127.0.0.1:50053", "faceedit.v1.Inpainter") == SERVING
    replica = "http://127.0.0.1:9102/metrics"
    deadline = time.monotonic() + 120  # round_robin takes it back once its channel has reconnected
    while metric_value(replica, OK_CALLS) < 1:
        assert time.monotonic() < deadline, "the restarted replica got no call"
        assert _load("127.0.0.1:50051", 6, 3, steps=2) == Counter({"OK": 6})


def test_up_gives_up_naming_the_child_once_it_fails_too_often(up: Up) -> None:
    """inpainter-2 failed once above; two more failures within the window reach --restart-limit's 3."""
    first = _pid_on_port("50053")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: "restarting in 2s" in up.err(), "the second restart to be scheduled", timeout_s=30)

    def respawned() -> bool:
        found = subprocess.run(["pgrep", "-f", "inpainter.server.*--port 50053 "], capture_output=True, text=True)
        return bool(found.stdout.split()) and int(found.stdout.split()[0]) != first

    wait_for(respawned, "inpainter-2 to be spawned again", timeout_s=30)
    os.kill(_pid_on_port("50053"), signal.SIGKILL)
    assert up.process.wait(timeout=60) == 1
    last = up.err().strip().splitlines()[-1]
    assert last.startswith("faceedit up: inpainter-2 failed 3 times within 300s; stopping the stack. Last: ")
    assert "SIGKILL" in last and "inpainter-2.log" in last
    assert health_status("127.0.0.1:50052", "") is None and health_status("127.0.0.1:50051", "") is None


def test_a_child_that_cannot_start_is_reported_with_its_reason_within_seconds(models_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [*FACEEDIT, "up", "--models-dir", str(models_dir), *SMALL, "--port", str(free_port()),
             "--triton-grpc-port", "0", "--inpainter-port", "0", "--metrics-port", "0",
             "--inpainter-metrics-port", str(port)],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        took = time.monotonic() - started
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "faceedit up: inpainter exited with 1: OSError: [Errno 98] Address already in use", last
    assert took < 90, took  # model loading never started: the bind fails first
