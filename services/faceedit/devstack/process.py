"""Child gRPC services for `faceedit up`, the demo and integration tests: start, wait for SERVING, stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class ServiceStartError(RuntimeError):
    pass


# Runs in the child before exec: a preexec_fn would be unsafe here because the parent has threads (gRPC,
# pytest), and a fork from a threaded process may only call async-signal-safe code until exec.
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
    "os.getppid() == int(sys.argv[1]) or sys.exit(1); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def dies_with_parent(argv: list[str]) -> list[str]:
    """argv wrapped so the program gets SIGTERM when its parent dies (PR_SET_PDEATHSIG), so a killed
    `faceedit up` (or test runner) leaves no orphaned servers behind. argv[0] must be a path."""
    return [sys.executable, "-c", _PDEATHSIG_EXEC, str(os.getpid()), *argv]


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


def metric_value(url: str, sample: str) -> float:
    """The value of one sample (name with its labels, as exposed) at a /metrics URL; 0 before it is first set."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
    return float(match[1]) if match else 0.0


def terminate(process: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    """SIGTERM (servers drain, Prometheus flushes), then SIGKILL of the whole process group after grace_s.
    The process must lead its own group (start_new_session=True)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a child's log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ServiceProcess:
    """`python -m module args...` as a child process whose log goes to log_path. Readiness is asked of
    health_address (its plaintext health-only port) when given, else of address."""

    name: str
    module: str
    args: list[str]
    address: str
    service: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    health_address: str | None = None
    process: subprocess.Popen | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                dies_with_parent([sys.executable, "-m", self.module, *self.args]),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    def wait_serving(self, timeout_s: float) -> ServiceProcess:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if (
                health_status(self.health_address or self.address, self.service)
                == health_pb2.HealthCheckResponse.SERVING
            ):
                return self
            time.sleep(0.1)
        raise ServiceStartError(f"{self.name} was not SERVING within {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (servers drain), then SIGKILL of the whole process group after grace_s."""
        terminate(self.process, grace_s)
