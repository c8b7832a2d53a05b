"""Small helpers the integration tests share: the `faceedit` command as a subprocess, Prometheus samples."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from faceedit.devstack.process import metric_value

__all__ = ["FACEEDIT", "metric_value", "run_faceedit", "wait_for"]

FACEEDIT = [sys.executable, "-m", "faceedit.cli.main"]


def run_faceedit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*FACEEDIT, *args], capture_output=True, text=True, timeout=timeout)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll condition until it holds; fail naming what was awaited when timeout_s passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
