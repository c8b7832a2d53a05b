"""Child gRPC services for `faceedit up`, the demo and integration tests: start, wait for SERVING, stop."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PR_SET_PDEATHSIG = 1


class ServiceStartError(RuntimeError):
    pass


def die_with_parent() -> None:
    """Popen preexec_fn: the child gets SIGTERM when its parent dies, so a killed `faceedit up` (or test runner)
    leaves no orphaned servers behind. Children still run in their own session, so a terminal's Ctrl-C reaches
    only the parent, which stops them in order."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def health_status(address: str, service: str = "", timeout_s: float = 1.0) -> int | None:
    """The grpc.health.v1 status of service at address, or None when it does not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return None
    return response.status


@dataclass
class ServiceProcess:
    """`python -m module args...` as a child process whose log goes to log_path."""

    name: str
    module: str
    args: list[str]
    address: str
    service: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    process: subprocess.Popen | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        return self

    def wait_serving(self, timeout_s: float) -> ServiceProcess:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if health_status(self.address, self.service) == health_pb2.HealthCheckResponse.SERVING:
                return self
            time.sleep(0.1)
        raise ServiceStartError(f"{self.name} was not SERVING within {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (servers drain), then SIGKILL of the whole process group after grace_s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
