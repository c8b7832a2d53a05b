"""Small helpers the integration tests share: the `faceedit` command as a subprocess, Prometheus samples."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

FACEEDIT = [sys.executable, "-m", "faceedit.cli.main"]


def run_faceedit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*FACEEDIT, *args], capture_output=True, text=True, timeout=timeout)


def metric_value(url: str, sample: str) -> float:
    """The value of one sample (name with its labels, as exposed) at a /metrics URL; 0 before it is first set."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
    return float(match[1]) if match else 0.0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll condition until it holds; fail naming what was awaited when timeout_s passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
