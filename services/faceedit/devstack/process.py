"""Child processes of the local stack (`faceedit up`, the demo, benchmarks, integration tests): one base class for
starting, readiness, the log, why a child ended, restarting and stopping, and the faceedit gRPC servers on it.
Triton (triton.py) and Prometheus (prometheus.py) build on the same class."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class ChildStartError(RuntimeError):
    """A child exited or was not ready in time. The first line names it and says why; the log's tail follows."""


class ServiceStartError(ChildStartError):
    pass


# Runs in the child before exec: a preexec_fn would be unsafe here because the parent has threads (gRPC,
# pytest), and a fork from a threaded process may only call async-signal-safe code until exec.
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
    "os.getppid() == int(sys.argv[1]) or sys.exit(1); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
_IGNORED = "Exception ignored in"  # how Python reports exceptions in __del__ and at shutdown: never the cause


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


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """Whether GET url answers 200 (readiness endpoints of Triton and Prometheus)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def metric_value(url: str, sample: str) -> float:
    """The value of one sample (name with its labels, as exposed) at a /metrics URL; 0 before it is first set."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
    return float(match[1]) if match else 0.0


def exception_line(log: str) -> str | None:
    """The line of a Python program's log that says why it ended: the last line of its last traceback that is
    not one Python merely reported while cleaning up ("Exception ignored in: <function ...__del__>", asyncio's
    closed-loop noise after the real error), e.g. `OSError: [Errno 98] Address already in use`; else its
    argparse error (`prog: error: ...`)."""
    lines = log.splitlines()
    found = None
    for index, line in enumerate(lines):
        if line != "Traceback (most recent call last):":
            continue
        ignored = index > 0 and lines[index - 1].startswith(_IGNORED)
        last = next((text for text in lines[index + 1 :] if text and not text[0].isspace()), None)
        if last is not None and not ignored:
            found = last
    if found is None:
        usage = [line for line in lines if re.match(r"^\S+: error: ", line)]
        found = usage[-1] if usage else None
    return found


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class ChildProcess:
    """A program run as a child of this process, its output in log_path, that answers a readiness check.

    Subclasses say what to run (command, environment), how to tell it is ready (is_ready, awaited) and how to read
    why it failed from its log (reason_in_log). The child leads its own process group, so stop() reaches
    whatever it forks, and gets SIGTERM if this process dies. A restart appends to the same log; the log's text,
    tail and reason are those of the latest start.
    """

    name: str
    log_path: Path  # a field, or set by prepare() where it lives in a working directory made there
    ready_timeout_s: float = 60.0
    process: subprocess.Popen | None = None
    start_error: type[ChildStartError] = ChildStartError
    awaited: str = "become ready"  # "{name} did not {awaited} within N s"
    hang_hint: str = ""
    _log_start: int = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def is_ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work before the first spawn (files to write, ports to pick)."""

    def cleanup(self) -> None:
        """Work after the child has ended (shared memory to free, scratch to remove)."""

    def reason_in_log(self, log: str) -> str | None:
        return exception_line(log)

    def spawn(self) -> Self:
        """Start the child without waiting for it; a second spawn (a restart) appends to the log."""
        first = self.process is None
        if first:
            self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb" if first else "ab") as log:
            self._log_start = log.tell()
            self.process = subprocess.Popen(
                dies_with_parent(self.command()),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout_s: float | None = None) -> Self:
        """Until is_ready(); a ChildStartError (the subclass's) once the child exits or timeout_s passes."""
        assert self.process is not None, f"{self.name} was never spawned"
        timeout_s = self.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            if self.check_ready():
                return self
            if time.monotonic() > deadline:
                raise self.start_error(
                    f"{self.name} did not {self.awaited} within {timeout_s:.0f}s{self.hang_hint}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def check_ready(self) -> bool:
        """One readiness check: True once ready, False while starting; a ChildStartError if the child exited."""
        if self.exit_code() is not None:
            raise self.start_error(f"{self.name} {self.exit_reason()}\n{self.log_tail()}")
        return self.is_ready()

    def start(self) -> Self:
        """Spawn and wait until ready; a child that fails to get there is killed before the error is raised."""
        self.spawn()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def restart(self, grace_s: float = 10.0) -> Self:
        """Stop the child if it still runs, then spawn it again with the same command (same ports)."""
        self.stop(grace_s)
        return self.spawn()

    def log_text(self) -> str:
        """The log written since the latest start."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log, for error messages."""
        return tail(self.log_text(), lines) or "(empty log)"

    def exit_code(self) -> int | None:
        """The exit code once the child has ended (negative: the signal that ended it), else None."""
        return None if self.process is None else self.process.poll()

    def exit_reason(self) -> str:
        """One line: how the child ended and, when its log says, why (`exited with 1: OSError: [Errno 98] ...`)."""
        code = self.exit_code()
        if code is None:
            return "is running"
        how = f"was killed by {signal_name(code)}" if code < 0 else f"exited with {code}"
        why = self.reason_in_log(self.log_text())
        return f"{how}: {why}" if why else how

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (servers drain, Prometheus flushes), then SIGKILL of the whole process group after grace_s."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.cleanup()

    def kill(self) -> None:
        """SIGKILL of the whole process group, for a child that hangs."""
        process = self.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ServiceProcess(ChildProcess):
    """`python -m module args...` as a child whose log goes to log_path. Readiness is the grpc.health.v1 status of
    service, asked of health_address (its plaintext health-only port) when given, else of address."""

    name: str
    module: str
    args: list[str]
    address: str
    service: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    health_address: str | None = None
    ready_timeout_s: float = 120.0
    start_error = ServiceStartError
    awaited = "report SERVING"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def is_ready(self) -> bool:
        return (
            health_status(self.health_address or self.address, self.service) == health_pb2.HealthCheckResponse.SERVING
        )

    def wait_serving(self, timeout_s: float | None = None) -> ServiceProcess:
        """Until its health says SERVING (models loaded and warm, dependencies ready)."""
        self.wait_ready(timeout_s)
        return self
